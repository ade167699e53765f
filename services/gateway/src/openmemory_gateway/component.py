"""Registers the gateway component with the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openmemory_core.runtime import BUS, Component, Running, Runtime

if TYPE_CHECKING:
    from openmemory_core.ratelimit import SharedRateLimiter
    from openmemory_core.watched import WatchedBucket
    from openmemory_gateway.accesslog import AccessLog


class _Gateway:
    def __init__(self, access: AccessLog, records: list[WatchedBucket], limiter: SharedRateLimiter) -> None:
        self.access, self.records, self.limiter = access, records, limiter

    async def stop(self) -> None:
        # HTTP is stopped by the runtime first; commands already published are durable. What is
        # left: the access log's queue and the rate counts not yet written, then the change feeds.
        await self.access.close()
        await self.limiter.close()
        for records in self.records:
            await records.stop()


async def start(runtime: Runtime) -> Running:
    # Imported here: registering every component must stay cheap for processes that run few.
    from openmemory_core.watched import WatchedBucket
    from openmemory_gateway.accesslog import AccessLog
    from openmemory_gateway.app import create_app
    from openmemory_gateway.service import MemoryGateway

    settings = runtime.settings.gateway
    bus = await runtime.bus()
    ttl = settings.record_cache_seconds
    keys = WatchedBucket(await bus.keys_bucket(), bus.nc, ttl)
    apps = WatchedBucket(await bus.apps_bucket(), bus.nc, ttl, remember_missing=True)
    for records in (keys, apps):
        await records.start()
    access = AccessLog(bus)
    app = create_app(
        MemoryGateway(bus, settings, apps, access),
        keys,
        await bus.rate_bucket(),
        settings,
        runtime.settings.oauth,
    )
    await app.limiter.follow(bus.nc)  # every replica's counts, as they are written
    runtime.serve_http("gateway", app, settings.host, settings.port)
    return _Gateway(access, [keys, apps], app.limiter)


component = Component(name="gateway", uses=frozenset({BUS}), start=start, order=30)
