"""The access log written in the background: every queued line is published, a full backlog drops
(and counts) instead of waiting, and a failed publish never reaches the caller."""

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_gateway.accesslog import ACCESS_LOG, AccessLog
from openmemory_testing import unique


def _line(user: str, n: int) -> c.AccessRecord:
    return c.AccessRecord(user_id=user, app="cursor", kind="search", query=f"q{n}", memory_ids=[f"m{n}"])


def _count(outcome: str) -> float:
    return float(ACCESS_LOG.labels(outcome)._value.get())


async def test_every_queued_line_is_published(bus: Bus) -> None:
    user, log = unique(), AccessLog(bus)
    for n in range(25):
        log.record(_line(user, n))  # returns at once: nothing is awaited
    await log.close()
    assert sorted(a.query or "" for a in await bus.accesses_of(user)) == sorted(f"q{n}" for n in range(25))


async def test_a_full_backlog_drops_lines_and_counts_them(bus: Bus) -> None:
    user, log = unique(), AccessLog(bus, max_backlog=2)
    dropped = _count("dropped")
    for n in range(5):  # the publishers cannot run before this returns to the event loop
        log.record(_line(user, n))
    assert _count("dropped") == dropped + 3
    await log.close()
    assert [a.query for a in await bus.accesses_of(user)] == ["q0", "q1"]


async def test_a_failed_publish_is_counted_not_raised(nats_url: str) -> None:
    closed = await Bus.connect(nats_url, "gw", partitions=4)
    await closed.close()
    log, failed = AccessLog(closed), _count("failed")
    log.record(_line(unique(), 0))
    await log.close()
    assert _count("failed") == failed + 1
