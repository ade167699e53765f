"""Attacks on the running system: other users' and other apps' data through every door, with every
kind of key; rate limits; oversized requests; foreign origins and hosts. Each refused attempt
changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from e2e_support import Client, ToolFailed, fresh_minute, mcp_client, mcp_sse_client, new_key

from openmemory_core import contracts as c
from openmemory_core.apps import get_app, put_app
from openmemory_core.bus import Bus
from openmemory_core.keys import create_key
from openmemory_core.runtime import read_endpoints
from openmemory_testing import RunningSystem, start_system, unique

LIMIT = 40  # requests per minute per key, in this module's system


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    system = start_system(
        tmp_path_factory.mktemp("sec") / "data",
        extra_env={
            "OPENMEMORY_GATEWAY_RATE_LIMIT_PER_MINUTE": str(LIMIT),
            "OPENMEMORY_ADMIN_RATE_LIMIT_PER_MINUTE": str(LIMIT),
            "OPENMEMORY_GATEWAY_MAX_REQUEST_BYTES": "65536",
        },
    )
    yield system
    system.stop()


async def _bus(system: RunningSystem) -> Bus:
    endpoints = read_endpoints(system.data_dir)
    assert endpoints is not None
    return await Bus.connect(str(endpoints["nats_url"]), "test", c.DEFAULT_PARTITIONS)


async def _expiring_key(system: RunningSystem, user: str) -> str:
    bus = await _bus(system)
    try:
        token, _ = await create_key(await bus.keys_bucket(), user, expires_at=c.now() + timedelta(seconds=1))
    finally:
        await bus.close()
    return token


async def test_no_key_of_one_user_reaches_another_users_memories(guarded: RunningSystem) -> None:
    alice, bob = unique("alice"), unique("bob")
    async with mcp_client(guarded.mcp_url, new_key(guarded, bob)) as bobs:
        added = await bobs.call("add_memories", text="Bob's bank PIN hint is his cat's name.", infer=False)
        bob_id = added["results"][0]["id"]
        before = await bobs.texts()
    expiring = await _expiring_key(guarded, alice)
    keys = {
        "read": new_key(guarded, alice, scopes="read"),
        "write": new_key(guarded, alice, scopes="write"),
        "read,write,admin": new_key(guarded, alice, scopes="read,write,admin"),
        "bound to cursor": new_key(guarded, alice, app="cursor", scopes="read,write,admin"),
    }
    revoked = new_key(guarded, alice)
    prefix = revoked.split("_")[1]
    guarded.cli("keys", "revoke", f"om_{prefix}")
    await asyncio.sleep(1.1)  # the expiring key has expired
    async with httpx.AsyncClient(base_url=guarded.admin_url + "/api/v1", timeout=30) as http:
        for kind, key in keys.items():
            async with mcp_client(guarded.mcp_url, key) as client:
                if "read" in kind or "admin" in kind:
                    assert await client.texts("bank PIN cat") == [], kind
                    with pytest.raises(ToolFailed):
                        await client.call("get_memory", memory_id=bob_id)
                if "write" in kind or "admin" in kind:
                    with pytest.raises(ToolFailed):
                        await client.call("delete_memories", memory_ids=[bob_id])
                    # deletes alice's (none), never bob's
                    await client.call("delete_all_memories", confirm=True)
            auth = {"Authorization": f"Bearer {key}"}
            for method, path, body in [
                ("GET", f"/memories/{bob_id}", None),
                ("GET", f"/memories/{bob_id}/related", None),
                ("PATCH", f"/memories/{bob_id}", {"text": "hijacked"}),
                ("DELETE", f"/memories/{bob_id}", None),
                ("POST", "/memories/actions", {"action": "delete", "ids": [bob_id]}),
            ]:
                answer = await http.request(method, path, json=body, headers=auth)
                assert answer.status_code in (403, 404), (kind, method, path, answer.status_code)
            listed = await http.get("/memories", headers=auth)
            assert listed.status_code == 403 or listed.json()["total"] == 0, kind
        # A key bound to one app cannot act as another through the OpenMemory URL form.
        bound = await http.post(
            f"{guarded.gateway_url}/mcp/claude/http/{alice}",
            json={},
            headers={"Authorization": f"Bearer {keys['bound to cursor']}"},
        )
        assert bound.status_code == 403
        for dead in (revoked, expiring):
            auth = {"Authorization": f"Bearer {dead}"}
            assert (await http.get("/memories", headers=auth)).status_code == 401
            assert (await http.post(guarded.mcp_url, json={}, headers=auth)).status_code == 401
            signed = await http.post("/session", json={"api_key": dead})
            assert signed.status_code == 401
    async with mcp_client(guarded.mcp_url, new_key(guarded, bob)) as bobs:
        assert await bobs.texts() == before


# Why a call of a key bound to the app "cursor" is refused, by the words of the refusal.
SCOPE = "does not have the 'write' scope"
OWNERSHIP_ONE = "no such memory"
OWNERSHIP_MANY = "no such memories"
PAUSED = "the app 'cursor' is paused"
NO_WRITE = "the app 'cursor' has no write permission"
OTHER_APP = "this API key is for app 'cursor', not 'claude'"


async def _calls(client: Client, foreign_id: str) -> dict[str, str | list[str]]:
    """Every MCP tool, each aimed at another user's memory where it takes an id: the texts it
    answered with (its own user's memories), or the words of its refusal."""
    attempts: dict[str, dict[str, Any]] = {
        "add_memories": {"text": f"Cursor note {unique()}.", "infer": False},
        "search_memory": {"query": "bank PIN cat"},
        "list_memories": {},
        "get_memory": {"memory_id": foreign_id},
        "delete_memories": {"memory_ids": [foreign_id]},
        "delete_all_memories": {"confirm": True},
    }
    outcomes: dict[str, str | list[str]] = {}
    for tool, arguments in attempts.items():
        try:
            answer = await client.call(tool, **arguments)
        except ToolFailed as refused:
            outcomes[tool] = str(refused)
            continue
        found = answer.get("results", [answer.get("memory")])
        outcomes[tool] = [m.get("memory", "") for m in found if m and m.get("event") != "DELETE"]
    return outcomes


def _refused_for(where: str, outcomes: dict[str, str | list[str]], reasons: dict[str, str]) -> None:
    """Each tool named in `reasons` was refused with those words; every other one answered with
    nothing of another user's."""
    for tool, outcome in outcomes.items():
        if tool in reasons:
            assert isinstance(outcome, str) and reasons[tool] in outcome, (where, tool, outcome)
        else:
            assert isinstance(outcome, list), (where, tool, outcome)
            assert not any("PIN" in text for text in outcome), (where, tool, outcome)


async def test_an_app_bound_key_is_refused_for_its_reason_through_every_tool_and_url(
    guarded: RunningSystem,
) -> None:
    """A key bound to "cursor" through every URL form and every tool: what its scopes do not allow
    is refused for the scope, another user's memory for ownership, and a paused app, an app without
    write permission, or another app in the URL for the app."""
    alice, bob = unique("alice"), unique("bob")
    async with mcp_client(guarded.mcp_url, new_key(guarded, bob)) as bobs:
        added = await bobs.call("add_memories", text="Bob's bank PIN hint is his cat's name.", infer=False)
        bob_id = added["results"][0]["id"]
    gateway = guarded.gateway_url
    forms = {  # the key decides the user, so a URL naming another user still acts as alice
        "/mcp": ("http", guarded.mcp_url),
        "/mcp/cursor/http/<user>": ("http", f"{gateway}/mcp/cursor/http/{alice}"),
        "/mcp/cursor/http/<other user>": ("http", f"{gateway}/mcp/cursor/http/{bob}"),
        "/sse": ("sse", f"{gateway}/sse"),
        "/mcp/cursor/sse/<user>": ("sse", f"{gateway}/mcp/cursor/sse/{alice}"),
    }
    bus = await _bus(guarded)
    apps = await bus.apps_bucket()
    standing = await get_app(apps, alice, "cursor")
    write_refused = {"add_memories": "", "delete_memories": "", "delete_all_memories": ""}

    @contextlib.asynccontextmanager
    async def session(transport: str, url: str, scopes: tuple[str, ...]) -> AsyncIterator[Client]:
        # A key per session: this module's rate limit is a few dozen requests a minute per key.
        token, _ = await create_key(await bus.keys_bucket(), alice, app="cursor", scopes=scopes)
        opened = mcp_client(url, token) if transport == "http" else mcp_sse_client(url, token)
        async with opened as client:
            yield client

    try:
        for form, (transport, url) in forms.items():
            async with session(transport, url, ("read",)) as client:
                _refused_for(
                    form,
                    await _calls(client, bob_id),
                    {**dict.fromkeys(write_refused, SCOPE), "get_memory": OWNERSHIP_ONE},
                )
            async with session(transport, url, ("read", "write")) as client:
                _refused_for(
                    form,
                    await _calls(client, bob_id),
                    {"get_memory": OWNERSHIP_ONE, "delete_memories": OWNERSHIP_MANY},
                )
            await put_app(apps, standing.model_copy(update={"paused": True}))
            async with session(transport, url, ("read", "write")) as client:
                outcomes = await _calls(client, bob_id)
            _refused_for(form, outcomes, dict.fromkeys(outcomes, PAUSED))
            await put_app(apps, standing.model_copy(update={"can_write": False}))
            async with session(transport, url, ("read", "write")) as client:
                _refused_for(
                    form,
                    await _calls(client, bob_id),
                    {**dict.fromkeys(write_refused, NO_WRITE), "get_memory": OWNERSHIP_ONE},
                )
            await put_app(apps, standing)
        # Another app in the URL: refused before any MCP message, for the app.
        token, _ = await create_key(await bus.keys_bucket(), alice, app="cursor")
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=30) as http:
            for method, path in [
                ("POST", f"/mcp/claude/http/{alice}"),
                ("GET", f"/mcp/claude/sse/{alice}"),
                ("POST", f"/mcp/claude/messages/?session_id={'0' * 32}"),
            ]:
                answer = await http.request(method, gateway + path, json={}, headers=auth)
                assert answer.status_code == 403 and OTHER_APP in answer.text, (path, answer.text)
    finally:
        await put_app(apps, standing)
        await bus.close()
    async with mcp_client(guarded.mcp_url, new_key(guarded, bob)) as bobs:
        assert await bobs.texts() == ["Bob's bank PIN hint is his cat's name."]


async def test_each_key_has_its_rate_limit(guarded: RunningSystem) -> None:
    user = unique()
    noisy, quiet = new_key(guarded, user), new_key(guarded, user)
    await fresh_minute()  # both bursts in one clock minute: its count is the limit's
    async with httpx.AsyncClient(timeout=30) as http:
        answers = [
            await http.post(guarded.mcp_url, json={}, headers={"Authorization": f"Bearer {noisy}"})
            for _ in range(LIMIT + 5)
        ]
        limited = [a for a in answers if a.status_code == 429]
        assert limited and int(limited[0].headers["retry-after"]) >= 1
        assert "too many requests" in limited[0].text
        other = await http.post(guarded.mcp_url, json={}, headers={"Authorization": f"Bearer {quiet}"})
        assert other.status_code != 429
        admin = [
            await http.get(guarded.admin_url + "/api/v1/stats", headers={"Authorization": f"Bearer {quiet}"})
            for _ in range(LIMIT + 5)
        ]
        assert {a.status_code for a in admin} == {200, 429} and "retry-after" in admin[-1].headers


async def test_oversized_requests_are_refused_and_store_nothing(guarded: RunningSystem) -> None:
    key = new_key(guarded, unique())
    async with mcp_client(guarded.mcp_url, key) as client:
        async with httpx.AsyncClient(timeout=30) as http:
            huge = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "add_memories", "arguments": {"text": "a" * 100_000}}}  # fmt: skip
            answer = await http.post(guarded.mcp_url, json=huge, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 413
        with pytest.raises(ToolFailed, match="limit"):
            await client.call("add_memories", text="b" * (c.MAX_TEXT_CHARS + 1))
        assert await client.texts() == []


async def test_foreign_origins_and_hosts_are_refused(guarded: RunningSystem) -> None:
    key = new_key(guarded, unique())
    auth = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    client_info = {"name": "t", "version": "1"}
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client_info}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    async with httpx.AsyncClient(timeout=30) as http:
        fine = await http.post(guarded.mcp_url, json=init, headers=auth)
        assert fine.status_code == 200
        evil = await http.post(guarded.mcp_url, json=init, headers={**auth, "Origin": "http://evil.example"})
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
        rebound = await http.post(guarded.mcp_url, json=init, headers={**auth, "Host": "evil.example"})
        assert rebound.status_code in (403, 421)
        preflight = await http.options(
            guarded.admin_url + "/api/v1/memories",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
    log = guarded.log()
    assert key not in log  # keys are never logged


def test_keys_never_reach_the_logs(guarded: RunningSystem) -> None:
    first = guarded.first_key()
    # The banner shows the first key only on a terminal; written to a file (a container's log, as
    # here) it names the file that holds the key, and no line may hold the key itself.
    log = guarded.log()
    assert first not in log
    assert "API key:    in " in log
