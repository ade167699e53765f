"""Registers the admin component with the runtime."""

from __future__ import annotations

from openmemory_core.runtime import BUS, Component, Running, Runtime


class _Admin:
    async def stop(self) -> None:
        return None


async def start(runtime: Runtime) -> Running:
    # Imported here: registering every component must stay cheap for processes that run few.
    from openmemory_admin.app import build_context, create_app

    settings = runtime.settings
    mcp_url = settings.gateway.mcp_url
    bus = await runtime.bus()
    app = create_app(await build_context(bus, mcp_url, settings))
    runtime.serve_http("admin", app, settings.admin.host, settings.admin.port)
    return _Admin()


component = Component(name="admin", uses=frozenset({BUS}), start=start, order=40)
