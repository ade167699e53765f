"""Key and app records through the gateway's cache: served from memory while the change feed is up,
dropped the moment the bucket changes, and never served while the connection is down."""

import asyncio
from collections.abc import Callable

import nats.errors
import pytest

from openmemory_core import contracts as c
from openmemory_core.apps import get_app, put_app
from openmemory_core.bus import Bus
from openmemory_core.errors import Unauthorized
from openmemory_core.keys import create_key, revoke_key, verify_key
from openmemory_core.watched import RECORD_CACHE, WatchedBucket
from openmemory_testing import unique


def _count(bucket: str, outcome: str) -> float:
    return float(RECORD_CACHE.labels(bucket, outcome)._value.get())


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for the change feed's callback to have run (an event, not a duration)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the change never arrived")


async def test_a_key_is_served_from_memory_until_it_is_revoked(bus: Bus, nats_url: str) -> None:
    watched = WatchedBucket(await bus.keys_bucket(), bus.nc, ttl=60)
    await watched.start()
    other = await Bus.connect(nats_url, "admin", partitions=4)  # another process: the admin service
    try:
        user = unique()
        token, record = await create_key(await other.keys_bucket(), user)
        # read from NATS; the first use writes `last_used_at`, which the feed reports: read again, kept
        for _ in range(2):
            assert (await verify_key(watched, token)).user_id == user
        hits = _count(watched.bucket, "hit")
        assert (await verify_key(watched, token)).user_id == user
        assert _count(watched.bucket, "hit") == hits + 1
        await revoke_key(await other.keys_bucket(), record.prefix, user)
        await _until(lambda: record.key_id not in watched._entries)
        with pytest.raises(Unauthorized, match="revoked"):
            await verify_key(watched, token)
    finally:
        await other.close()
        await watched.stop()


async def test_an_app_never_configured_is_remembered_until_it_is_paused(bus: Bus, nats_url: str) -> None:
    watched = WatchedBucket(await bus.apps_bucket(), bus.nc, ttl=60, remember_missing=True)
    await watched.start()
    other = await Bus.connect(nats_url, "admin", partitions=4)
    try:
        user = unique()
        assert not (await get_app(watched, user, "cursor")).paused  # absent: allowed, and kept as absent
        hits = _count(watched.bucket, "hit")
        assert not (await get_app(watched, user, "cursor")).paused
        assert _count(watched.bucket, "hit") == hits + 1
        await put_app(await other.apps_bucket(), c.AppRecord(user_id=user, app="cursor", paused=True))
        await _until(lambda: c.app_key(user, "cursor") not in watched._entries)
        assert (await get_app(watched, user, "cursor")).paused
    finally:
        await other.close()
        await watched.stop()


async def test_nothing_is_served_from_memory_while_the_connection_is_down(nats_url: str) -> None:
    own = await Bus.connect(nats_url, "gateway", partitions=4)
    watched = WatchedBucket(await own.keys_bucket(), own.nc, ttl=60)
    await watched.start()
    token, _ = await create_key(watched, unique())
    # The creation and the first use's `last_used_at` reach the feed when they will; a read that
    # overlaps one is not kept. Read until one is kept (an event, not a duration).
    for _ in range(500):
        await verify_key(watched, token)
        if watched._entries:
            break
        await asyncio.sleep(0.01)
    assert watched._entries  # cached now
    await own.close()  # no change feed: the cache could be stale, so it is not asked
    bypassed = _count(watched.bucket, "bypass")
    with pytest.raises(nats.errors.ConnectionClosedError):
        await watched.get(next(iter(watched._entries)))
    assert _count(watched.bucket, "bypass") == bypassed + 1


async def test_with_no_ttl_every_read_goes_to_nats(bus: Bus) -> None:
    watched = WatchedBucket(await bus.keys_bucket(), bus.nc, ttl=0)
    await watched.start()
    token, _ = await create_key(watched, unique())
    hits = _count(watched.bucket, "hit")
    for _ in range(3):
        await verify_key(watched, token)
    assert _count(watched.bucket, "hit") == hits and not watched._entries
