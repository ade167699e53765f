"""The admin HTTP app: the dashboard's landing page, a status API, and the user's graph."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from nats.js.kv import KeyValue

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.errors import OpenMemoryError
from openmemory_core.keys import presented_token, verify_key

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OpenMemory</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style></head>
<body><h1>OpenMemory</h1>
<p>Your memory layer is running. The dashboard is being built; until then, connect an MCP client to
<code>{mcp_url}</code> with an API key (see the README), and manage keys with
<code>openmemory keys</code>.</p>
<p>Status: <span id="status">{status}</span></p></body></html>"""


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> c.Principal:
    """The caller, by the same API key that MCP clients use."""
    try:
        found = await verify_key(request.app.state.keys, presented_token(authorization, x_api_key))
    except OpenMemoryError as exc:
        raise HTTPException(exc.http_status, exc.message, headers={"WWW-Authenticate": "Bearer"}) from exc
    if not found.can("read"):
        raise HTTPException(403, "this API key does not have the 'read' scope")
    return found


Caller = Annotated[c.Principal, Depends(principal)]


def create_app(bus: Bus, keys: KeyValue, mcp_url: str, query_timeout: float = 10.0) -> FastAPI:
    app = FastAPI(title="OpenMemory admin", version="0.1.0")
    app.state.keys = keys

    @app.get("/", response_class=HTMLResponse)
    async def dashboard() -> str:
        """The dashboard's landing page."""
        status = "connected to the bus" if bus.connected else "bus unreachable"
        return PAGE.replace("{mcp_url}", html.escape(mcp_url)).replace("{status}", status)

    @app.get("/api/v1/status")
    async def status() -> dict[str, object]:
        """Whether the admin service reaches the bus."""
        return {"bus_connected": bus.connected}

    @app.get("/api/v1/graph")
    async def graph(
        caller: Caller, entity: Annotated[str, Query(min_length=1, max_length=200)]
    ) -> dict[str, object]:
        """The caller's own graph around one entity: its relations, with their type, the memory
        they came from, and when they held (`valid_to` is null while a relation is current).
        Use `entity=User` for the user themself. Authenticated with the same API key as MCP."""
        try:
            found = await bus.query(
                c.Query.GRAPH,
                c.GraphRequest(user_id=caller.user_id, entity=entity),
                c.GraphResponse,
                query_timeout,
            )
        except OpenMemoryError as exc:
            raise HTTPException(exc.http_status, exc.message) from exc
        return {
            "entity": found.entity,
            "relations": [{**e.model_dump(), "current": e.current} for e in found.edges],
        }

    return app
