"""KV records read through a short-lived cache that every change clears at once.

Every MCP request reads its API key's record and its app's standing, and every add its user's review
setting; from NATS KV that is a round trip each. `WatchedBucket` is the bucket with a cache in front
of `get`: an entry lives at most `ttl` seconds, and any put, update, delete or purge of a key drops
that key's entry the moment the bus delivers it. The gateway reads keys and apps through one, ingest
the settings bucket.

How a change is seen: KV writes are messages on the bucket's subjects (`$KV.<bucket>.<key>`), so a
plain subscription to `$KV.<bucket>.>` receives each one as NATS routes it to the stream, before the
writer is even acknowledged, with no consumer kept on the server (nats-py's `KeyValue.watch` is an
ordered JetStream consumer: state on the server, a replay of every key at start, delivery only after
the write is stored, and a consumer recreated after a gap that reports failure only to the error
callback). What the subscription cannot see, it refuses to guess about:
- while the connection is down, nothing is served from the cache (and nothing is cached);
- after a reconnect, every entry cached before it is ignored (changes made meanwhile were missed);
- an entry fetched while a change to the bucket arrived is not kept (it may predate the change);
- the TTL bounds what nothing here can see (a stream purged through the JetStream API).
So a revoked key or a paused app is refused on the next call, on every gateway, and a review
setting applies to the next add.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import nats.js.errors
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue
from prometheus_client import Counter

from openmemory_core.kv import Bucket

log = logging.getLogger(__name__)

RECORD_CACHE = Counter(
    "openmemory_kv_cache_total",
    "Cached KV record reads (keys, apps, settings) by bucket and outcome (hit, miss, bypass: the "
    "change feed was down)",
    ["bucket", "outcome"],
)
#: Entries per bucket before the cache is emptied and filled again (a bound, not a working size).
MAX_ENTRIES = 20_000


@dataclass(frozen=True)
class _Cached:
    entry: KeyValue.Entry | None  # None: the key does not exist (an app never configured)
    until: float
    reconnects: int


class WatchedBucket(Bucket):
    """A KV bucket whose `get` answers from a cache that the bucket's change feed keeps true.
    Writes go straight to the bucket (and clear the entry through the feed)."""

    def __init__(self, bucket: Bucket, nc: Nats, ttl: float, remember_missing: bool = False) -> None:
        super().__init__(bucket.bucket, bucket.jetstream)
        self.nc = nc
        self.ttl = ttl
        self.remember_missing = remember_missing
        self._entries: dict[str, _Cached] = {}
        self._changes = 0  # changes seen on the feed: a fetch that overlaps one is not kept
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe to the bucket's changes; the cache serves only once the server has the
        subscription (`flush`), so no change can fall between a fetch and the feed."""
        if self.ttl <= 0 or self._sub is not None:
            return
        self._sub = await self.nc.subscribe(f"{self.subject_prefix}>", cb=self._changed)
        await self.nc.flush(timeout=5)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        self._entries.clear()
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:  # closing: the connection may be gone already
                log.debug("could not unsubscribe from %s changes", self.bucket, exc_info=True)

    async def _changed(self, msg: Msg) -> None:
        self._changes += 1
        self._entries.pop(msg.subject.removeprefix(self.subject_prefix), None)

    def _feed_live(self) -> bool:
        return self._sub is not None and bool(self.nc.is_connected)

    def _reconnects(self) -> int:
        return int(self.nc.stats.get("reconnects", 0))

    async def get(self, key: str, revision: int | None = None, validate_keys: bool = True) -> KeyValue.Entry:
        if revision is not None or not self._feed_live():
            if revision is None and self.ttl > 0:
                RECORD_CACHE.labels(self.bucket, "bypass").inc()
            return await super().get(key, revision, validate_keys)
        now = time.monotonic()
        reconnects = self._reconnects()
        cached = self._entries.get(key)
        if cached is not None and cached.until > now and cached.reconnects == reconnects:
            RECORD_CACHE.labels(self.bucket, "hit").inc()
            if cached.entry is None:
                raise nats.js.errors.KeyNotFoundError
            return cached.entry
        RECORD_CACHE.labels(self.bucket, "miss").inc()
        changes = self._changes
        try:
            entry = await super().get(key, None, validate_keys)
        except nats.js.errors.KeyNotFoundError:
            if self.remember_missing:
                self._keep(key, None, now, changes, reconnects)
            raise
        self._keep(key, entry, now, changes, reconnects)
        return entry

    def _keep(
        self, key: str, entry: KeyValue.Entry | None, now: float, changes: int, reconnects: int
    ) -> None:
        if changes != self._changes or reconnects != self._reconnects() or not self._feed_live():
            return  # a change (or a reconnect) came while this was read: it may be older than that
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if v.until > now}
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
        self._entries[key] = _Cached(entry, now + self.ttl, reconnects)
