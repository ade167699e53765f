"""Registers the admin component with the runtime."""

from __future__ import annotations

from openmemory_core.runtime import BUS, Component, Running, Runtime

from openmemory_admin.app import create_app


class _Admin:
    async def stop(self) -> None:
        return None


async def start(runtime: Runtime) -> Running:
    settings = runtime.settings
    mcp_url = f"http://{settings.gateway.host}:{settings.gateway.port}/mcp"
    app = create_app(await runtime.bus(), mcp_url)
    runtime.serve_http("admin", app, settings.admin.host, settings.admin.port)
    return _Admin()


component = Component(name="admin", uses=frozenset({BUS}), start=start, order=40)
