"""Registers the gateway component with the runtime."""

from __future__ import annotations

from openmemory_core.runtime import BUS, Component, Running, Runtime


class _Gateway:
    async def stop(self) -> None:
        # HTTP is stopped by the runtime first; commands already published are durable.
        return None


async def start(runtime: Runtime) -> Running:
    # Imported here: registering every component must stay cheap for processes that run few.
    from openmemory_gateway.app import create_app
    from openmemory_gateway.service import MemoryGateway

    settings = runtime.settings.gateway
    bus = await runtime.bus()
    app = create_app(
        MemoryGateway(bus, settings, await bus.apps_bucket()),
        await bus.keys_bucket(),
        await bus.rate_bucket(),
        settings,
        runtime.settings.oauth,
    )
    runtime.serve_http("gateway", app, settings.host, settings.port)
    return _Gateway()


component = Component(name="gateway", uses=frozenset({BUS}), start=start, order=30)
