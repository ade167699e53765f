"""Rate limits shared by replicas through a real nats-server's KV, and the process's own bucket when
NATS cannot be asked."""

import asyncio

from openmemory_core.bus import Bus
from openmemory_core.ratelimit import SharedRateLimiter
from openmemory_testing import unique

MINUTE = 29_000_000 * 60.0  # a fixed clock, at the start of a minute


async def test_replicas_draw_on_one_allowance_per_key_and_minute(nats_url: str) -> None:
    first, second = [await Bus.connect(nats_url, name, partitions=4) for name in ("gw1", "gw2")]
    now = [MINUTE + 10]
    replicas = [
        SharedRateLimiter(await bus.rate_bucket(), 4, "gateway", clock=lambda: now[0])
        for bus in (first, second)
    ]
    key = unique()
    waits = [await replicas[i % 2].take(key) for i in range(7)]
    assert waits[:4] == [0.0] * 4  # two on each replica: four in all, the limit
    assert waits[4:] == [50.0] * 3  # then refused until the next minute, on both
    assert await replicas[0].take(unique()) == 0.0  # another key has its own allowance
    admin = SharedRateLimiter(await first.rate_bucket(), 4, "admin", clock=lambda: now[0])
    assert await admin.take(key) == 0.0  # another service's limit is counted apart
    now[0] = MINUTE + 60  # the next minute
    assert await replicas[1].take(key) == 0.0
    for bus in (first, second):
        await bus.close()


async def test_concurrent_requests_on_two_replicas_are_counted_exactly(nats_url: str) -> None:
    buses = [await Bus.connect(nats_url, name, partitions=4) for name in ("gw1", "gw2")]
    replicas = [
        SharedRateLimiter(await bus.rate_bucket(), 10, "gateway", clock=lambda: MINUTE + 5) for bus in buses
    ]
    key = unique()
    waits = await asyncio.gather(*(replicas[i % 2].take(key) for i in range(30)))
    assert sum(1 for w in waits if w == 0.0) == 10
    for bus in buses:
        await bus.close()


async def test_without_nats_the_process_limits_on_its_own(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, "gw", partitions=4)
    limiter = SharedRateLimiter(await bus.rate_bucket(), 3, "gateway")
    await bus.close()  # NATS cannot be asked any more
    waits = [await limiter.take("key") for _ in range(4)]
    assert waits[:3] == [0.0] * 3 and waits[3] > 0
