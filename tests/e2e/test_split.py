"""The split topology: two gateways, one ingest+search process, one admin, over a shared NATS."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from e2e_support import ToolFailed, fresh_minute, mcp_client, new_key
from mcp import MCPError

from openmemory_core.servers import embedded_nats, start_embedded
from openmemory_testing import RunningSystem, start_system, stop_all, unique

GATEWAY_LIMIT = 40  # requests per minute per key, across both gateways


@dataclass
class Split:
    gateways: list[RunningSystem]
    workers: RunningSystem
    admin: RunningSystem
    env: dict[str, str]
    root: Path

    def key(self, user: str) -> str:
        return self.gateways[0].cli("keys", "create", "--user", user).stdout.strip()


@pytest_asyncio.fixture(scope="module")
async def split(tmp_path_factory: pytest.TempPathFactory, graph_url: str) -> AsyncIterator[Split]:
    tmp_path = tmp_path_factory.mktemp("split")
    # a bus of its own, no other test's commands
    nats_proc, nats_url = await start_embedded(embedded_nats, tmp_path / "nats")
    env = {
        "OPENMEMORY_NATS_URL": nats_url,
        "OPENMEMORY_GRAPH_URL": graph_url,
        "OPENMEMORY_GATEWAY_RATE_LIMIT_PER_MINUTE": str(GATEWAY_LIMIT),
    }
    started: list[RunningSystem] = []
    built: Split | None = None
    try:
        workers = start_system(tmp_path / "workers", "ingest,search", env)
        started.append(workers)
        gateways = [start_system(tmp_path / f"gateway{i}", "gateway", env) for i in (1, 2)]
        started.extend(gateways)
        admin = start_system(tmp_path / "admin", "admin", env)
        started.append(admin)
        built = Split(gateways, workers, admin, env, tmp_path)
        yield built
    finally:
        if built is not None:
            started.append(built.workers)  # a test may have restarted them
        stop_all(started)
        await nats_proc.stop()


async def test_what_one_gateway_adds_the_other_finds_and_deletes(split: Split) -> None:
    user = unique()
    key = split.key(user)
    first, second = (g.mcp_url for g in split.gateways)
    async with mcp_client(first, key) as one, mcp_client(second, key) as two:
        added = await one.call("add_memories", text="I moved to Oslo in March. I speak Norwegian.")
        assert [r["event"] for r in added["results"]] == ["ADD", "ADD"]
        assert (await two.texts("which city do I live in?"))[0] == "User moved to Oslo in March."
        assert sorted(await two.texts()) == ["User moved to Oslo in March.", "User speaks Norwegian."]
        await two.call("delete_memories", memory_ids=[added["results"][0]["id"]])
        assert await one.texts() == ["User speaks Norwegian."]


async def test_isolation_and_auth_hold_in_the_split(split: Split) -> None:
    owner, stranger = split.key(unique()), split.key(unique())
    gateway = split.gateways[1]
    async with mcp_client(gateway.mcp_url, owner) as client:
        await client.call("add_memories", text="My locker code is 4711.")
    async with mcp_client(gateway.mcp_url, stranger) as client:
        assert await client.texts("locker code") == []
        with pytest.raises(ToolFailed, match="text is empty"):
            await client.call("add_memories", text="")
    assert httpx.post(gateway.mcp_url, json={}).status_code == 401
    assert httpx.get(f"{split.admin.admin_url}/healthz").status_code == 200
    assert httpx.get(split.admin.admin_url, follow_redirects=True).status_code == 200


async def test_adds_while_ingest_is_down_are_accepted_and_applied_after_restart(split: Split) -> None:
    key = split.key(unique())
    gateway = split.gateways[0]
    async with mcp_client(gateway.mcp_url, key) as client:
        await client.call("add_memories", text="My favourite band is Radiohead.")
    assert split.workers.stop() == 0
    async with mcp_client(gateway.mcp_url, key) as client:
        accepted = await client.call("add_memories", text="I play the bass guitar.")
        assert accepted["status"] == "accepted" and len(accepted["request_id"]) == 32
        with pytest.raises(ToolFailed, match="search service is not running"):
            await client.texts()
    split.workers = start_system(split.root / "workers", "ingest,search", split.env)
    async with mcp_client(gateway.mcp_url, key) as client:
        assert (await client.texts("which band do I like?"))[0] == "User's favourite band is Radiohead."
        for _ in range(100):  # the accepted add is applied once ingest is back
            if len(await client.texts()) == 2:
                break
            await asyncio.sleep(0.1)
        assert sorted(await client.texts()) == [
            "User plays the bass guitar.",
            "User's favourite band is Radiohead.",
        ]


def test_a_split_target_without_urls_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="needs OPENMEMORY_NATS_URL"):
        start_system(tmp_path / "lonely", "gateway", {"OPENMEMORY_NATS_URL": ""}, timeout=30)


async def test_a_revocation_reaches_every_gateway_within_a_second(split: Split) -> None:
    key = split.key(unique())
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=10) as http:
        for gateway in split.gateways:
            assert (await http.post(gateway.mcp_url, json={}, headers=auth)).status_code != 401
        split.admin.cli("keys", "revoke", key.split("_")[1])
        revoked_at = asyncio.get_running_loop().time()
        for gateway in split.gateways:
            while (await http.post(gateway.mcp_url, json={}, headers=auth)).status_code != 401:
                assert asyncio.get_running_loop().time() - revoked_at < 1.0, gateway.mcp_url
                await asyncio.sleep(0.05)


async def test_the_two_gateways_share_each_keys_rate_limit(split: Split) -> None:
    key = split.key(unique())
    auth = {"Authorization": f"Bearer {key}"}
    await fresh_minute(needed=10)
    async with httpx.AsyncClient(timeout=30) as http:
        statuses = [
            [(await http.post(gateway.mcp_url, json={}, headers=auth)).status_code for _ in range(25)]
            for gateway in split.gateways
        ]
    assert 429 not in statuses[0]
    # the second gateway served only 25 itself, but the key had 40 a minute in all
    assert statuses[1].count(429) == 10 and 429 not in statuses[1][:15]


def _counted(gateway: RunningSystem, name: str, **labels: str) -> float:
    """The sum of a counter's series on one gateway's /metrics, those with all of `labels`."""
    total = 0.0
    for line in httpx.get(f"{gateway.gateway_url}/metrics").text.splitlines():
        found = re.fullmatch(rf"{name}\{{([^}}]*)\}} (\S+)", line)
        if found and all(f'{k}="{v}"' in found[1] for k, v in labels.items()):
            total += float(found[2])
    return total


async def test_a_revoked_key_or_a_paused_app_is_refused_on_the_next_call_on_every_gateway(
    split: Split,
) -> None:
    """Each gateway keeps key and app records in memory (`watched.WatchedBucket`); a change made
    through the admin API still applies to the very next call, on both gateways."""
    user = unique()
    owner = new_key(split.gateways[0], user, scopes="read,write,admin")
    cursor, doomed = new_key(split.gateways[0], user, "cursor"), new_key(split.gateways[0], user)
    first, second = split.gateways
    rest = httpx.AsyncClient(
        base_url=f"{split.admin.admin_url}/api/v1", headers={"Authorization": f"Bearer {owner}"}, timeout=30
    )
    async with (
        rest,
        mcp_client(first.mcp_url, cursor) as cursor_one,
        mcp_client(second.mcp_url, cursor) as cursor_two,
        mcp_client(first.mcp_url, doomed) as doomed_one,
        mcp_client(second.mcp_url, doomed) as doomed_two,
    ):
        hits = [_counted(g, "openmemory_kv_cache_total", outcome="hit") for g in split.gateways]
        for client in (cursor_one, cursor_two, doomed_one, doomed_two):
            assert await client.texts("anything") == []
            assert await client.texts("anything") == []
        # the records were read from memory on both gateways: what follows is no fresh read anyway
        for gateway, before in zip(split.gateways, hits, strict=True):
            assert _counted(gateway, "openmemory_kv_cache_total", outcome="hit") > before

        (await rest.patch("/apps/cursor", json={"paused": True})).raise_for_status()
        for client in (cursor_one, cursor_two):
            with pytest.raises(ToolFailed, match="paused"):
                await client.texts("anything")
        assert await doomed_one.texts("anything") == []  # another app of the same user is not paused
        (await rest.patch("/apps/cursor", json={"paused": False})).raise_for_status()
        assert await cursor_one.texts("anything") == [] and await cursor_two.texts("anything") == []

        (await rest.delete(f"/keys/{doomed.split('_')[1]}")).raise_for_status()
        for gateway, client in ((first, doomed_one), (second, doomed_two)):
            refused = _counted(gateway, "openmemory_auth_failures_total", status="401")
            with pytest.raises(MCPError):
                await client.texts("anything")
            assert _counted(gateway, "openmemory_auth_failures_total", status="401") == refused + 1
        assert await cursor_one.texts("anything") == []  # the user's other keys still work
