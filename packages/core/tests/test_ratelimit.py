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


async def _shared_count(bus: Bus, limiter: SharedRateLimiter, key: str, minute: int) -> int:
    entry = await (await bus.rate_bucket()).get(limiter._counter(key, minute))
    return int(entry.value or b"0")


async def test_admit_counts_every_admitted_request_in_the_shared_count(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, "gw", partitions=4)
    limiter = SharedRateLimiter(await bus.rate_bucket(), 50, "gateway", clock=lambda: MINUTE + 10)
    key = unique()
    waits = [await limiter.admit(key) for _ in range(53)]
    assert waits[:50] == [0.0] * 50 and waits[50:] == [50.0] * 3  # one process: exactly the limit
    await limiter.settled()
    assert await _shared_count(bus, limiter, key, int(MINUTE // 60)) == 50  # none lost, none twice
    # and what `take` (admin, another replica asking exactly) sees is that count
    other = SharedRateLimiter(await bus.rate_bucket(), 50, "gateway", clock=lambda: MINUTE + 10)
    assert await other.take(key) == 50.0
    await bus.close()


async def test_admit_on_two_replicas_keeps_one_allowance(nats_url: str) -> None:
    """As the split e2e test does: one gateway serves 25, then another 25, of a limit of 40."""
    buses = [await Bus.connect(nats_url, name, partitions=4) for name in ("gw1", "gw2")]
    now = [MINUTE + 10]
    first, second = [
        SharedRateLimiter(await b.rate_bucket(), 40, "gateway", clock=lambda: now[0]) for b in buses
    ]
    for replica, bus in zip((first, second), buses, strict=True):
        await replica.follow(bus.nc)
    key = unique()
    assert [await first.admit(key) for _ in range(25)] == [0.0] * 25
    await first.settled()
    waits = [await second.admit(key) for _ in range(25)]
    assert waits[:15] == [0.0] * 15 and waits[15:] == [50.0] * 10
    # The first replica learns the second's count from the counter's messages, without asking.
    await second.settled()
    for _ in range(200):
        if first._tallies[key].counted == 40:
            break
        await asyncio.sleep(0.01)
    assert first._tallies[key].counted == 40
    assert await first.admit(key) == 50.0
    now[0] = MINUTE + 60  # the next minute: a fresh allowance
    assert await second.admit(key) == 0.0
    for bus in buses:
        await bus.close()


async def test_admit_bursts_on_two_replicas_pass_the_limit_by_little(nats_url: str) -> None:
    """Two gateways (following each other's counts, as they do) take 200 requests of one key at
    once: the limit is reached, passed by at most a quarter, and every admitted request is counted.
    (Requests that waited for a count no longer skip the burst rule: that admitted 106 of 60.)"""
    buses = [await Bus.connect(nats_url, name, partitions=4) for name in ("gw1", "gw2")]
    replicas = [
        SharedRateLimiter(await b.rate_bucket(), 60, "gateway", clock=lambda: MINUTE + 5) for b in buses
    ]
    for replica, bus in zip(replicas, buses, strict=True):
        await replica.follow(bus.nc)
    for _ in range(5):
        key = unique()
        waits = await asyncio.gather(*(replicas[i % 2].admit(key) for i in range(200)))
        admitted = sum(1 for w in waits if w == 0.0)
        for replica in replicas:
            await replica.settled()
        assert 60 <= admitted <= 60 + 60 // 4
        assert await _shared_count(buses[0], replicas[0], key, int(MINUTE // 60)) == admitted
    for bus in buses:
        await bus.close()


async def test_admit_without_nats_limits_on_the_process_count(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, "gw", partitions=4)
    limiter = SharedRateLimiter(await bus.rate_bucket(), 5, "gateway", clock=lambda: MINUTE + 5)
    await bus.close()
    waits = [await limiter.admit("key") for _ in range(7)]
    assert waits[:5] == [0.0] * 5 and waits[5:] == [55.0] * 2
    await limiter.settled()
