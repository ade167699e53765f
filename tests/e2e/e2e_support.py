"""End-to-end fixtures: real `openmemory` processes and the official MCP client over HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

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
