"""Drive every OpenMemory tool with the MCP Python SDK 1.x (`mcp<2`), in a virtual environment
of its own; `tests/e2e/test_protocol_revisions.py` runs it and judges what it reports.

stdin: {"key": "om_…", "scenarios": [{"name", "transport": "http" | "sse", "url", "version", "text"}]}
stdout: {"sdk": "1.x.y", "scenarios": [{"name", "negotiated", "server", "sent", "tools", "calls"}]}

`version` is the protocol revision the client offers in `initialize`. SDK 1.x always offers its
`mcp.types.LATEST_PROTOCOL_VERSION` (read when `initialize` runs), so an older revision is forced by
setting that constant; everything after the handshake is the SDK's own doing, including the
`MCP-Protocol-Version` header its streamable HTTP transport sends with the negotiated revision.
`sent` lists, for every HTTP request the client made, its method, path, that header and the
JSON-RPC method in its body, as the client's own httpx recorded them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any

import httpx
import mcp.types
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


def recorder(sent: list[dict[str, Any]]) -> Any:
    async def record(request: httpx.Request) -> None:
        method = None
        if request.method == "POST":
            with contextlib.suppress(ValueError):
                method = json.loads(request.content).get("method")
        sent.append(
            {
                "http": request.method,
                "path": request.url.path,
                "protocol_version": request.headers.get("mcp-protocol-version"),
                "session_id": request.headers.get("mcp-session-id"),
                "method": method,
            }
        )

    return record


@contextlib.asynccontextmanager
async def connected(
    scenario: dict[str, Any], key: str, sent: list[dict[str, Any]]
) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"}
    hooks = {"request": [recorder(sent)]}
    if scenario["transport"] == "sse":

        def factory(
            headers: dict[str, str] | None = None,
            timeout: httpx.Timeout | None = None,
            auth: httpx.Auth | None = None,
        ) -> httpx.AsyncClient:
            return httpx.AsyncClient(headers=headers, timeout=timeout, auth=auth, event_hooks=hooks)

        async with (
            sse_client(scenario["url"], headers=headers, httpx_client_factory=factory) as (read, write),
            ClientSession(read, write) as session,
        ):
            yield session
        return
    async with (
        httpx.AsyncClient(headers=headers, timeout=30, event_hooks=hooks) as http,
        streamable_http_client(scenario["url"], http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return {"error": text if result.isError else None, "result": result.structuredContent}


async def run(scenario: dict[str, Any], key: str) -> dict[str, Any]:
    mcp.types.LATEST_PROTOCOL_VERSION = scenario["version"]  # what `initialize` offers
    sent: list[dict[str, Any]] = []
    calls: dict[str, dict[str, Any]] = {}
    async with connected(scenario, key, sent) as session:
        init = await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        calls["add_memories"] = await call(session, "add_memories", text=scenario["text"], infer=False)
        added = (calls["add_memories"]["result"] or {}).get("results") or [{}]
        memory_id = added[0].get("id", "")
        calls["search_memory"] = await call(session, "search_memory", query=scenario["text"], limit=3)
        calls["list_memories"] = await call(session, "list_memories")
        calls["get_memory"] = await call(session, "get_memory", memory_id=memory_id)
        if "get_request" in tools:
            request_id = (calls["add_memories"]["result"] or {}).get("request_id", "")
            calls["get_request"] = await call(session, "get_request", request_id=request_id)
        calls["delete_memories"] = await call(session, "delete_memories", memory_ids=[memory_id])
        calls["again"] = await call(session, "add_memories", text=scenario["text"] + " Again.", infer=False)
        calls["delete_all_memories"] = await call(session, "delete_all_memories", confirm=True)
        calls["list_after_wipe"] = await call(session, "list_memories")
    return {
        "name": scenario["name"],
        "negotiated": str(init.protocolVersion),
        "server": init.serverInfo.name,
        "sent": sent,
        "tools": tools,
        "calls": calls,
    }


async def main() -> None:
    plan = json.load(sys.stdin)
    reports = [await run(scenario, plan["key"]) for scenario in plan["scenarios"]]
    json.dump({"sdk": version("mcp"), "scenarios": reports}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
