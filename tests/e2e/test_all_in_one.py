"""The whole system in one process, as `make run` starts it, driven by the official MCP client."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from e2e_support import ToolFailed, add_search_list_delete, mcp_client, mcp_sse_client, new_key
from mcp.shared.exceptions import MCPError

from openmemory_testing import RunningSystem, eventually, start_system, unique


def test_keys_create_prints_the_key_and_nothing_else(all_in_one: RunningSystem) -> None:
    out = all_in_one.cli("keys", "create", "--user", unique(), "--app", "cursor")
    assert re.fullmatch(r"om_[0-9a-f]{8}_[A-Za-z0-9_-]{43}\n", out.stdout)
    listed = all_in_one.cli("keys", "list").stdout
    assert out.stdout[:11] in listed


def test_health_and_dashboard_answer(all_in_one: RunningSystem) -> None:
    assert httpx.get(f"{all_in_one.gateway_url}/healthz").status_code == 200
    ready = httpx.get(f"{all_in_one.gateway_url}/readyz").json()
    assert ready["ready"] is True and ready["checks"] == {"nats": True, "graph": True}
    page = httpx.get(all_in_one.admin_url, follow_redirects=True)  # to the sign-in page
    assert page.status_code == 200 and "Sign in" in page.text and page.url.path == "/login"


def test_the_container_healthcheck_command(all_in_one: RunningSystem) -> None:
    import subprocess

    from openmemory_testing import openmemory_command

    port = all_in_one.gateway_url.rsplit(":", 1)[1]
    env = {**all_in_one.env, "OPENMEMORY_GATEWAY_PORT": port}
    ok = subprocess.run([openmemory_command(), "healthcheck"], env=env, timeout=30, check=False)
    assert ok.returncode == 0
    down = subprocess.run(
        [openmemory_command(), "healthcheck", "--target", "search"],
        env={**env, "OPENMEMORY_OPS_PORT": "9"}, timeout=30, check=False,
    )  # fmt: skip
    assert down.returncode == 1


async def test_add_search_list_delete_across_two_clients_of_one_user(all_in_one: RunningSystem) -> None:
    await add_search_list_delete(all_in_one)


async def test_get_memory_returns_the_memory_with_its_history(all_in_one: RunningSystem) -> None:
    user = unique()
    cursor, claude = new_key(all_in_one, user, "cursor"), new_key(all_in_one, user, "claude")
    async with mcp_client(all_in_one.mcp_url, cursor) as one, mcp_client(all_in_one.mcp_url, claude) as two:
        added = await one.call("add_memories", text="I run 10k every Saturday.")
        memory_id = added["results"][0]["id"]
        got = await two.call("get_memory", memory_id=memory_id)
        assert got["memory"]["memory"] == "User runs 10k every Saturday."
        assert [(h["event"], h["app"], h["after"]) for h in got["history"]] == [
            ("ADD", "cursor", "User runs 10k every Saturday.")
        ]
        await two.call("delete_memories", memory_ids=[memory_id])
        gone = await one.call("get_memory", memory_id=memory_id)
        assert gone["memory"] is None
        assert [(h["event"], h["app"]) for h in gone["history"]] == [("ADD", "cursor"), ("DELETE", "claude")]
        assert gone["history"][1]["before"] == "User runs 10k every Saturday."
        with pytest.raises(ToolFailed, match="not a memory id"):
            await one.call("get_memory", memory_id="42")
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, unique())) as stranger:
        with pytest.raises(ToolFailed, match="no such memory"):
            await stranger.call("get_memory", memory_id=memory_id)


async def test_a_key_sees_only_its_own_user(all_in_one: RunningSystem) -> None:
    alice, mallory = new_key(all_in_one, unique()), new_key(all_in_one, unique())
    async with mcp_client(all_in_one.mcp_url, alice) as a, mcp_client(all_in_one.mcp_url, mallory) as m:
        added = await a.call("add_memories", text="My bank PIN hint is the cat's birthday.")
        secret_id = added["results"][0]["id"]
        assert await m.texts("bank PIN hint") == []
        assert await m.texts() == []
        with pytest.raises(ToolFailed, match="no such memories"):
            await m.call("delete_memories", memory_ids=[secret_id])
        await m.call("delete_all_memories", confirm=True)
        assert await a.texts() == ["User's bank PIN hint is the cat's birthday."]


@pytest.mark.parametrize("path", ["/mcp", "/sse", "/mcp/cursor/http/alice", "/mcp/cursor/sse/alice"])
@pytest.mark.parametrize("key", [None, "om_00000000_" + "x" * 43, "Bearer-nonsense"])
def test_requests_without_a_valid_key_get_401(all_in_one: RunningSystem, path: str, key: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "add_memories", "arguments": {"text": "sneaky"}}}  # fmt: skip
    response = httpx.post(f"{all_in_one.gateway_url}{path}", json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_key_may_come_as_x_api_key(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique())
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    headers = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(all_in_one.mcp_url, json=body, headers=headers).status_code == 401
    answer = httpx.post(all_in_one.mcp_url, json=body, headers={**headers, "X-API-Key": key})
    assert answer.status_code == 200 and "serverInfo" in answer.text


async def test_unauthenticated_requests_touch_nothing(all_in_one: RunningSystem) -> None:
    user = unique()
    key = new_key(all_in_one, user)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "add_memories", "arguments": {"text": "sneaky"}}}  # fmt: skip
    assert httpx.post(all_in_one.mcp_url, json=body).status_code == 401
    async with mcp_client(all_in_one.mcp_url, key) as client:
        assert await client.texts() == []


async def test_bad_input_is_a_clear_tool_error_and_stores_nothing(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique())
    async with mcp_client(all_in_one.mcp_url, key) as client:
        with pytest.raises(ToolFailed, match="text is empty"):
            await client.call("add_memories", text="   ")
        with pytest.raises(ToolFailed, match="limit is 20000"):
            await client.call("add_memories", text="x" * 20_001)
        with pytest.raises(ToolFailed, match="text"):
            await client.call("add_memories", text=123)
        with pytest.raises(ToolFailed, match="memory_ids"):
            await client.call("delete_memories", memory_ids="not-a-list")
        with pytest.raises(ToolFailed, match="not a memory id: 'nope'"):
            await client.call("delete_memories", memory_ids=["nope"])
        with pytest.raises(ToolFailed, match="no such memories"):
            await client.call("delete_memories", memory_ids=["0b7a5b5e-8d31-4b0e-9d6f-0a2c1f3e4d5c"])
        with pytest.raises(ToolFailed, match="query is empty"):
            await client.call("search_memory", query="")
        assert await client.texts() == []


async def test_openmemory_url_forms_and_app_binding(all_in_one: RunningSystem) -> None:
    user = unique()
    any_app = new_key(all_in_one, user)
    base = all_in_one.gateway_url
    async with mcp_client(f"{base}/mcp/windsurf/http/{user}", any_app) as windsurf:
        added = await windsurf.call("add_memories", text="I prefer tabs over spaces.")
        assert added["status"] == "done"
    async with mcp_sse_client(f"{base}/mcp/cline/sse/whatever-the-url-says", any_app) as cline:
        await cline.call("add_memories", text="My editor theme is solarized.", infer=False)
        listed = (await cline.call("list_memories"))["results"]
    assert {(m["memory"], m["app"]) for m in listed} == {
        ("User prefers tabs over spaces.", "windsurf"),
        ("My editor theme is solarized.", "cline"),
    }
    async with mcp_sse_client(f"{base}/sse", any_app) as legacy:
        assert len(await legacy.texts()) == 2
    cursor_only = new_key(all_in_one, user, "cursor")
    response = httpx.post(
        f"{base}/mcp/claude/http/{user}", headers={"Authorization": f"Bearer {cursor_only}"}, json={}
    )
    assert response.status_code == 403 and "for app 'cursor'" in response.json()["error"]["message"]


def leaves(group: BaseExceptionGroup[BaseException] | None) -> list[BaseException]:
    if group is None:
        return []
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


async def test_a_call_refused_before_any_tool_runs_tells_the_client_why(all_in_one: RunningSystem) -> None:
    """The gateway refuses some calls before the MCP transport sees them (no key, another app's
    key, a revoked key, NATS unreachable). The official client passes our reason on to its model,
    not "Server returned an error response"."""
    user = unique()
    cursor_only = new_key(all_in_one, user, "cursor")
    with pytest.raises(ExceptionGroup) as opening:  # raised in the transport's task group
        async with mcp_client(f"{all_in_one.gateway_url}/mcp/claude/http/{user}", cursor_only):
            pass
    matched, _ = opening.value.split(MCPError)
    (other_app,) = leaves(matched)
    assert other_app.code == -32003 and "for app 'cursor'" in other_app.message, other_app.error
    key = new_key(all_in_one, user)
    async with mcp_client(all_in_one.mcp_url, key) as client:
        assert (await client.call("search_memory", query="anything"))["results"] == []
        all_in_one.cli("keys", "revoke", key.split("_")[1])
        with pytest.raises(MCPError) as revoked:
            await client.call("search_memory", query="anything")
    assert revoked.value.code == -32010 and "revoked" in revoked.value.message, revoked.value.error
    assert revoked.value.error.data == {"http_status": 401}


async def test_a_read_only_key_cannot_write(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique(), scopes="read")
    async with mcp_client(all_in_one.mcp_url, key) as client:
        with pytest.raises(ToolFailed, match="'write' scope"):
            await client.call("add_memories", text="nope")
        assert await client.texts() == []


async def test_first_start_prints_urls_and_a_key_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    system = start_system(data)
    try:
        # The banner follows readiness by a moment: the health endpoint answers first.
        async def banner_printed() -> bool:
            return "Press Ctrl-C to stop." in system.log()

        await eventually(banner_printed)
        banner = system.log()
        assert f"MCP URL:    {system.mcp_url}" in banner and "Dashboard:" in banner
        key = system.first_key()
        # Printed on a terminal only: here the output goes to a log file, which names the key's file.
        assert key not in banner and str(data / "first-api-key") in banner
        async with mcp_client(system.mcp_url, key) as client:
            await client.call("add_memories", text="I was born in Porto.")
    finally:
        assert system.stop() == 0
    restarted = start_system(data)
    try:
        assert restarted.first_key() == key
        async with mcp_client(restarted.mcp_url, key) as client:
            assert await client.texts("where was I born?") == ["User was born in Porto."]
    finally:
        restarted.stop()


async def test_the_graph_api_shows_relations_with_validity_to_their_user_only(
    all_in_one: RunningSystem,
) -> None:
    user = unique()
    key = new_key(all_in_one, user)
    async with mcp_client(all_in_one.mcp_url, key) as client:
        await client.call("add_memories", text="I live in Lisbon. My sister Anna lives in Vienna.")
        moved = await client.call("add_memories", text="I moved to Berlin last month.")
        assert [r["event"] for r in moved["results"]] == ["ADD", "UPDATE"]
        found = [
            r["memory"] for r in (await client.call("search_memory", query="where do I live?"))["results"]
        ]
        berlin = next(i for i, text in enumerate(found) if text.startswith("User moved to Berlin"))
        assert found[berlin + 1] == "User lives in Lisbon."  # the replaced fact right after the current one
    url = f"{all_in_one.admin_url}/api/v1/graph"
    response = httpx.get(url, params={"entity": "User"}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    relations = {(r["relation"], r["entity"]): r for r in response.json()["relations"]}
    assert relations[("LIVES_IN", "Berlin")]["current"] is True
    assert relations[("LIVES_IN", "Lisbon")]["current"] is False
    assert relations[("HAS_SISTER", "Anna")]["direction"] == "out"
    anna = httpx.get(url, params={"entity": "anna"}, headers={"X-API-Key": key}).json()["relations"]
    assert {(r["relation"], r["direction"], r["entity"]) for r in anna} == {
        ("HAS_SISTER", "in", "User"),
        ("LIVES_IN", "out", "Vienna"),
    }
    assert httpx.get(url, params={"entity": "User"}).status_code == 401
    stranger = new_key(all_in_one, unique())
    refused = httpx.get(url, params={"entity": "Anna"}, headers={"Authorization": f"Bearer {stranger}"})
    assert refused.status_code == 404
    assert httpx.get(url, params={"entity": ""}, headers={"X-API-Key": key}).status_code == 422


def test_the_reembed_command_reaches_ingest_and_reports(all_in_one: RunningSystem) -> None:
    refused = all_in_one.cli("reembed", "--from", "old-model-8", "--wait", "20", check=False)
    assert refused.returncode == 1
    assert "no memories stored with 'old-model-8'; there are: minilm-l6-v2-int8-384" in refused.stderr
    same = all_in_one.cli("reembed", "--from", "minilm-l6-v2-int8-384", "--wait", "20", check=False)
    assert same.returncode == 1 and "is the model in use" in same.stderr


async def test_search_filters_through_mcp(all_in_one: RunningSystem) -> None:
    user = unique()
    base = all_in_one.gateway_url
    any_app = new_key(all_in_one, user)
    async with mcp_client(f"{base}/mcp/cursor/http/{user}", any_app) as cursor:
        await cursor.call("add_memories", text="I visited Rome on 3 April 2023 and ate carbonara.")
    async with mcp_client(f"{base}/mcp/claude/http/{user}", any_app) as claude:
        await claude.call("add_memories", text="I visited Oslo on 20 June 2023.")
        await claude.call("add_memories", text="I'm allergic to peanuts.")

        async def found(**filters: object) -> list[str]:
            return sorted(await claude.texts_with("trips and travel", **filters))

        everything = await found()
        assert len(everything) == 3
        assert await found(app="cursor") == ["User visited Rome on 3 April 2023 and ate carbonara."]
        assert await found(category="health") == ["User is allergic to peanuts."]
        assert await found(since="2023-06-01", until="2023-06-30") == ["User visited Oslo on 20 June 2023."]
        with pytest.raises(ToolFailed, match="'since' is after 'until'"):
            await found(since="2023-07-01", until="2023-06-01")
        with pytest.raises(ToolFailed, match="since"):
            await found(since="last tuesday")
