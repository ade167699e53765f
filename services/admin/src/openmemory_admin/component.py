"""Registers the admin component with the runtime."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from openmemory_core.runtime import BUS, Component, Running, Runtime


class _Admin:
    def __init__(self, stoppers: list[Callable[[], Awaitable[None]]]) -> None:
        self._stoppers = stoppers

    async def stop(self) -> None:
        for stop in self._stoppers:
            await stop()


async def start(runtime: Runtime) -> Running:
    # Imported here: registering every component must stay cheap for processes that run few.
    from openmemory_admin.app import build_context, create_app
    from openmemory_admin.webhooks.delivery import WebhookDispatcher, Webhooks

    settings = runtime.settings
    mcp_url = settings.gateway.mcp_url
    bus = await runtime.bus()
    ctx = await build_context(bus, mcp_url, settings)
    # Webhooks are delivered here: admin holds their registrations and the secrets key, talks only
    # NATS and outbound HTTP, and runs in every deployment (`all`, and its own process when split).
    webhooks = ctx.webhooks = await Webhooks.open(bus, settings)
    stoppers: list[Callable[[], Awaitable[None]]] = []
    if settings.webhooks.enabled:
        dispatcher = WebhookDispatcher(bus, webhooks)
        await dispatcher.start()
        stoppers.append(dispatcher.stop)
    stoppers.append(webhooks.close)
    app = create_app(ctx)
    runtime.serve_http("admin", app, settings.admin.host, settings.admin.port)
    return _Admin(stoppers)


component = Component(name="admin", uses=frozenset({BUS}), start=start, order=40)
