"""The MCP surface 2026 clients expect: tool annotations, a confirmed wipe, paged and size-capped
answers, short search results, and rate limits a model (and a person) can act on."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from e2e_support import Client, ToolFailed, fresh_minute, mcp_client, new_key
from mcp import ClientSession
from mcp.client.session import ClientRequestContext
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError
from mcp.types import ElicitRequestParams, ElicitResult

from openmemory_testing import RunningSystem, start_system, unique

pytestmark = pytest.mark.asyncio

MAX_CHARS = 1500
LIMIT = 12


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """Default settings: the gateway listens on 127.0.0.1, so the loopback rate limit applies."""
    running = start_system(tmp_path_factory.mktemp("surface") / "data")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """Small answers and a low per-key limit, set explicitly."""
    running = start_system(
        tmp_path_factory.mktemp("tight") / "data",
        extra_env={
            "OPENMEMORY_GATEWAY_MAX_ANSWER_CHARS": str(MAX_CHARS),
            "OPENMEMORY_GATEWAY_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        },
    )
    yield running
    running.stop()


async def _add(client: Client, count: int, word: str = "thing") -> None:
    for start in range(0, count, 20):  # one add of up to 20 sentences: 20 memories
        text = " ".join(f"I own a {word} called {word}{n}." for n in range(start, min(count, start + 20)))
        added = await client.call("add_memories", text=text)
        assert added["status"] == "done"


async def test_every_tool_is_annotated_for_the_client(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        tools = {t.name: t for t in (await client.session.list_tools()).tools}
    reads, deletes = (
        {"search_memory", "list_memories", "get_memory", "get_request"},
        {"delete_memories", "delete_all_memories"},
    )
    assert reads | deletes | {"add_memories"} <= set(tools)
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None and tool.title, name
        assert hints.open_world_hint is False, name
        assert hints.read_only_hint is (name in reads), name
        assert bool(hints.destructive_hint) is (name in deletes), name
    for name in (*reads, "delete_memories"):
        assert tools[name].annotations.idempotent_hint is True, name  # type: ignore[union-attr]
    assert tools["delete_all_memories"].title == "Delete ALL memories"
    assert "confirm" in tools["delete_all_memories"].input_schema["properties"]


async def test_delete_all_without_confirm_deletes_nothing(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        await _add(client, 3)
        for arguments in ({}, {"confirm": False}):
            with pytest.raises(ToolFailed, match=r"nothing was deleted.*confirm: true"):
                await client.call("delete_all_memories", **arguments)
        assert len(await client.texts()) == 3
        wiped = await client.call("delete_all_memories", confirm=True)
        assert [r["event"] for r in wiped["results"]] == ["DELETE"] * 3
        assert await client.texts() == []


@contextlib.asynccontextmanager
async def _eliciting_client(system: RunningSystem, key: str, action: str) -> AsyncIterator[Client]:
    """A client that declares elicitation and answers every question with `action`. Over legacy SSE:
    a session there is stateful, so the server can ask back (stateless streamable HTTP cannot)."""

    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=action, content={"confirm": True} if action == "accept" else None)  # type: ignore[arg-type]

    asked: list[str] = []
    async with (
        sse_client(f"{system.gateway_url}/sse", headers={"Authorization": f"Bearer {key}"}) as (
            read,
            write,
            *_,
        ),
        ClientSession(read, write, elicitation_callback=answer) as session,
    ):
        await session.initialize()
        client = Client(session)
        client.asked = asked  # type: ignore[attr-defined]
        yield client


async def test_a_client_that_can_ask_its_user_is_asked(system: RunningSystem) -> None:
    user = unique()
    key = new_key(system, user)
    async with _eliciting_client(system, key, "decline") as declining:
        await _add(declining, 2)
        with pytest.raises(ToolFailed, match=r"did not confirm.*nothing was deleted"):
            await declining.call("delete_all_memories")
        assert declining.asked and "cannot be undone" in declining.asked[0]  # type: ignore[attr-defined]
        assert len(await declining.texts()) == 2
    async with mcp_client(system.mcp_url, key) as stateless:  # cannot be asked: needs confirm
        with pytest.raises(ToolFailed, match="confirm: true"):
            await stateless.call("delete_all_memories")
        assert len(await stateless.texts()) == 2
    async with _eliciting_client(system, key, "accept") as accepting:
        wiped = await accepting.call("delete_all_memories")
        assert [r["event"] for r in wiped["results"]] == ["DELETE"] * 2
        assert await accepting.texts() == []


async def _page_through(client: Client, **arguments: Any) -> list[dict[str, Any]]:
    pages = []
    cursor = None
    for _ in range(20):
        page = await client.call("list_memories", **arguments, **({"cursor": cursor} if cursor else {}))
        pages.append(page)
        cursor = page.get("next_cursor")
        if cursor is None:
            return pages
    raise AssertionError("paging never ended")


async def test_paging_through_120_memories(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        await _add(client, 120)
        pages = await _page_through(client, limit=50)
        assert [len(p["results"]) for p in pages] == [50, 50, 20]
        assert "next_cursor" not in pages[-1] and all("truncated" not in p for p in pages)
        ids = [m["id"] for p in pages for m in p["results"]]
        assert len(set(ids)) == 120
        assert len((await client.call("list_memories"))["results"]) == 50  # the default limit


async def test_a_changed_or_foreign_cursor_is_refused(system: RunningSystem) -> None:
    alice, bob = unique(), unique()
    async with (
        mcp_client(system.mcp_url, new_key(system, alice)) as alices,
        mcp_client(system.mcp_url, new_key(system, bob)) as bobs,
    ):
        await _add(alices, 5, "secret")
        await _add(bobs, 1)
        cursor = (await alices.call("list_memories", limit=2))["next_cursor"]
        assert len((await alices.call("list_memories", limit=2, cursor=cursor))["results"]) == 2
        with pytest.raises(ToolFailed, match="not valid for this user"):
            await bobs.call("list_memories", limit=2, cursor=cursor)
        body, check = cursor.split(".")
        for tampered in (body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + check, cursor + "0", "x"):
            with pytest.raises(ToolFailed, match="not valid for this user"):
                await alices.call("list_memories", limit=2, cursor=tampered)
        with pytest.raises(ToolFailed, match="32768"):  # a forged cursor of any size is not decoded
            await alices.call("list_memories", limit=2, cursor="A" * 40_000 + "." + check)


async def test_search_gives_only_the_fields_asked_for(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        await _add(client, 3, "boat")
        found = await client.call("search_memory", query="boat", fields=["id", "memory"])
        assert found["results"] and all(set(r) == {"source", "id", "memory"} for r in found["results"])
        snippets = await client.call("search_memory", query="boat", fields="snippet")
        assert all(set(r) == {"source", "id", "memory", "score"} for r in snippets["results"])
        assert all(r["source"] == "memory" for r in found["results"] + snippets["results"])
        with pytest.raises(ToolFailed, match="unknown fields"):
            await client.call("search_memory", query="boat", fields=["id", "password"])


async def test_a_long_answer_is_cut_and_says_how_to_get_the_rest(tight: RunningSystem) -> None:
    async with mcp_client(tight.mcp_url, new_key(tight, unique())) as client:
        await _add(client, 20, "lamp")
        listed = await client.call("list_memories", limit=50)
        assert listed["truncated"] is True and 0 < len(listed["results"]) < 20
        assert "next_cursor" in listed["message"] and str(MAX_CHARS) in listed["message"]
        rest = await client.call("list_memories", limit=50, cursor=listed["next_cursor"])
        ids = [m["id"] for m in listed["results"] + rest["results"]]
        assert len(set(ids)) == len(ids)  # the cut page's cursor continues right after what was shown
        found = await client.call("search_memory", query="lamp", limit=20)
        assert found["truncated"] is True and "smaller limit" in found["message"]


def _metric(text: str, name: str) -> float:
    values = [float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.MULTILINE)]
    return sum(values)


async def test_a_rate_limited_call_tells_the_model_when_to_retry(tight: RunningSystem) -> None:
    key = new_key(tight, unique())
    await fresh_minute()
    before = _metric(httpx.get(f"{tight.gateway_url}/metrics").text, "openmemory_rate_limited_total")
    async with mcp_client(tight.mcp_url, key) as client:
        for _ in range(LIMIT):  # the session's own requests count too: the limit comes before this ends
            try:
                await client.call("search_memory", query="anything")
            except MCPError as exc:
                message = str(exc)
                break
        else:
            raise AssertionError("never rate limited")
    assert re.search(r"too many requests for this API key .*Wait \d+ seconds, then retry", message), message
    async with httpx.AsyncClient(timeout=30) as http:
        answers = [
            await http.post(tight.mcp_url, json={}, headers={"Authorization": f"Bearer {key}"})
            for _ in range(3)
        ]
    answer = answers[-1]
    assert answer.status_code == 429 and 1 <= int(answer.headers["retry-after"]) <= 60
    error = answer.json()["error"]
    assert f"Wait {answer.headers['retry-after']} seconds" in error["message"]
    assert error["data"]["retry_after_seconds"] == int(answer.headers["retry-after"])
    after = _metric(httpx.get(f"{tight.gateway_url}/metrics").text, "openmemory_rate_limited_total")
    assert after - before >= 4
    lines = [line for line in tight.log().splitlines() if key[:11] in line and "rate limit" in line]
    assert len(lines) == 1, lines  # once per key and minute, however many refusals
    assert key not in tight.log() and key[11:] not in tight.log()


async def test_a_loopback_gateway_does_not_throttle_one_busy_client(system: RunningSystem) -> None:
    key = new_key(system, unique())
    async with httpx.AsyncClient(timeout=30) as http:
        statuses = [
            (await http.post(system.mcp_url, json={}, headers={"Authorization": f"Bearer {key}"})).status_code
            for _ in range(700)  # more than the non-loopback default of 600 a minute
        ]
    assert 429 not in statuses


async def test_mcp_calls_leave_no_session_termination_lines(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        for _ in range(3):
            await client.call("list_memories")
    assert "Terminating session" not in system.log()
