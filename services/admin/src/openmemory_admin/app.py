"""The admin HTTP app. For now: the dashboard's landing page and a status API."""

from __future__ import annotations

import html

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from openmemory_core.bus import Bus

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OpenMemory</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style></head>
<body><h1>OpenMemory</h1>
<p>Your memory layer is running. The dashboard is being built; until then, connect an MCP client to
<code>{mcp_url}</code> with an API key (see the README), and manage keys with
<code>openmemory keys</code>.</p>
<p>Status: <span id="status">{status}</span></p></body></html>"""


def create_app(bus: Bus, mcp_url: str) -> FastAPI:
    app = FastAPI(title="OpenMemory admin", version="0.1.0")

    @app.get("/", response_class=HTMLResponse)
    async def dashboard() -> str:
        """The dashboard's landing page."""
        status = "connected to the bus" if bus.connected else "bus unreachable"
        return PAGE.replace("{mcp_url}", html.escape(mcp_url)).replace("{status}", status)

    @app.get("/api/v1/status")
    async def status() -> dict[str, object]:
        """Whether the admin service reaches the bus."""
        return {"bus_connected": bus.connected}

    return app
