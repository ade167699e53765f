"""End-to-end fixtures: real `openmemory` processes and the official MCP client over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx
import httpx2
import nats
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client.parser import text_string_to_metric_families

from openmemory_core import contracts as c
from openmemory_testing import RunningSystem, start_system, unique


class Client:
    """One MCP client session, with results decoded."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.session.call_tool(tool, arguments)
        if result.is_error:
            text = " ".join(getattr(c, "text", "") for c in result.content)
            raise ToolFailed(text)
        if result.structured_content is not None:
            return dict(result.structured_content)
        return dict(json.loads(result.content[0].text))  # type: ignore[union-attr]

    async def texts(self, query: str | None = None) -> list[str]:
        """A search's texts, or every memory's (newest first, following `list_memories`' pages)."""
        if query is not None:
            return [m["memory"] for m in (await self.call("search_memory", query=query))["results"]]
        texts: list[str] = []
        cursor: str | None = None
        while True:
            page = await self.call("list_memories", limit=500, **({"cursor": cursor} if cursor else {}))
            texts += [m["memory"] for m in page["results"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return texts

    async def texts_with(self, query: str, **filters: Any) -> list[str]:
        return [m["memory"] for m in (await self.call("search_memory", query=query, **filters))["results"]]


class ToolFailed(Exception):
    pass


@contextlib.asynccontextmanager
async def mcp_client(url: str, key: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield Client(session)


@contextlib.asynccontextmanager
async def mcp_sse_client(url: str, key: str) -> AsyncIterator[Client]:
    async with (
        sse_client(url, headers={"Authorization": f"Bearer {key}"}) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield Client(session)


@pytest.fixture(scope="module")
def all_in_one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """One `openmemory run --target all` for a module's scenarios (each uses its own users)."""
    system = start_system(
        tmp_path_factory.mktemp("all") / "data", extra_env={"OPENMEMORY_INGEST_GAUGE_INTERVAL_SECONDS": "0.2"}
    )
    yield system
    system.stop()


async def fresh_minute(needed: float = 15.0) -> None:
    """Rate limits and failure counts are per clock minute: a test whose burst must stay in one
    minute starts it with at least `needed` seconds left, waiting for the next minute otherwise."""
    if time.time() % 60 > 60 - needed:
        await asyncio.sleep(60.5 - time.time() % 60)


def new_key(system: RunningSystem, user: str, app: str = "*", scopes: str = "read,write") -> str:
    out = system.cli("keys", "create", "--user", user, "--app", app, "--scopes", scopes)
    return out.stdout.strip()


async def add_search_list_delete(system: RunningSystem) -> None:
    """What one client of a user adds, another finds, lists and deletes; a wipe leaves nothing."""
    user = unique()
    cursor_key, claude_key = new_key(system, user, "cursor"), new_key(system, user, "claude")
    async with (
        mcp_client(system.mcp_url, cursor_key) as cursor,
        mcp_client(system.mcp_url, claude_key) as claude,
    ):
        added = await cursor.call("add_memories", text="I am vegetarian. My dog is called Biscuit.")
        assert added["status"] == "done"
        assert [(r["memory"], r["event"]) for r in added["results"]] == [
            ("User is vegetarian.", "ADD"),
            ("User's dog is called Biscuit.", "ADD"),
        ]
        found = await claude.call("search_memory", query="what is my dog's name?")
        assert found["results"][0]["memory"] == "User's dog is called Biscuit."
        assert found["results"][0]["app"] == "cursor"
        assert sorted(await claude.texts()) == ["User is vegetarian.", "User's dog is called Biscuit."]

        dog_id = added["results"][1]["id"]
        deleted = await claude.call("delete_memories", memory_ids=[dog_id])
        assert [(r["id"], r["event"]) for r in deleted["results"]] == [(dog_id, "DELETE")]
        assert "User's dog is called Biscuit." not in await cursor.texts("dog name")
        assert await cursor.texts() == ["User is vegetarian."]

        wiped = await cursor.call("delete_all_memories", confirm=True)
        assert [r["event"] for r in wiped["results"]] == ["DELETE"]
        assert await claude.texts() == []


async def stored_events(nats_url: str, users: Iterable[str]) -> dict[str, list[c.MemoryEvent]]:
    """Every event stored in OM_EVENTS for each user, oldest first, read with an ephemeral pull
    consumer of the test's own (not the product's reader: what checks must not be what is checked)."""
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=5)
    try:
        js = nc.jetstream()
        found: dict[str, list[c.MemoryEvent]] = {}
        for user in users:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0
            )
            sub = await js.pull_subscribe(c.event_subject(user), stream=c.EVENTS_STREAM, config=config)
            try:
                pending = (await sub.consumer_info()).num_pending or 0
                messages: list[Any] = []
                while len(messages) < pending:
                    messages += await sub.fetch(min(256, pending - len(messages)), timeout=10)
            finally:
                await sub.unsubscribe()
            found[user] = [c.MemoryEvent.model_validate_json(m.data) for m in messages]
        return found
    finally:
        await nc.close()


def adds_by_request(events: Iterable[c.MemoryEvent]) -> Counter[str]:
    """How many ADD events each request id produced."""
    return Counter(e.request_id for e in events if e.change is c.ChangeKind.ADD)


def adds_by_text(events: Iterable[c.MemoryEvent]) -> Counter[str]:
    """How many ADD events each memory text produced."""
    return Counter(e.after.text for e in events if e.change is c.ChangeKind.ADD and e.after is not None)


def metric_total(base_url: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter's samples (those with the given labels) from `/metrics`."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).raise_for_status().text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            wanted = sample.name == name or sample.name == f"{name}_total"
            if wanted and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
