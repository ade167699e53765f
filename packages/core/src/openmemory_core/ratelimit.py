"""Per-key rate limits. `SharedRateLimiter` counts each key's requests in a NATS KV bucket, so every
replica of a gateway (or of admin) draws on one allowance; while NATS cannot be asked, a token bucket
in the process (`RateLimiter`) stands in."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

#: Tries of the compare-and-set increment (each lost race means another request was counted) before
#: a request is judged by the process's own bucket.
SHARED_TRIES = 32


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """`per_minute` requests per key, with bursts up to `burst` (default: a minute's worth)."""

    per_minute: int
    burst: int | None = None
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds to wait before the next one will."""
        capacity = float(self.burst or self.per_minute)
        rate = self.per_minute / 60.0
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        if len(self._buckets) > 100_000:  # forget idle keys rather than grow without bound
            self._buckets = {k: b for k, b in self._buckets.items() if now - b.at < 120}
        return max(0.001, (1 - bucket.tokens) / rate)


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class SharedRateLimiter:
    """`per_minute` requests per key in each clock minute, counted in `kv` (a counter per key and
    minute, incremented by compare-and-set, expired by the bucket's TTL) and so shared by every
    process that uses the same bucket."""

    def __init__(
        self, kv: KeyValue, per_minute: int, scope: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.kv = kv
        self.per_minute = per_minute
        self.scope = scope  # "gateway", "admin": each service's limit is counted apart
        self.clock = clock
        self.local = RateLimiter(per_minute)

    async def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until the next minute, when it will."""
        now = self.clock()
        minute = int(now // 60)
        counter = f"{self.scope}.{hashlib.sha256(key.encode()).hexdigest()[:32]}.{minute}"
        try:
            for _ in range(SHARED_TRIES):
                try:
                    entry = await self.kv.get(counter)
                except nats.js.errors.KeyNotFoundError:
                    try:
                        await self.kv.create(counter, b"1")
                        return 0.0
                    except nats.js.errors.KeyWrongLastSequenceError:
                        continue  # another replica counted the minute's first request meanwhile
                count = int(entry.value or b"0")
                if count >= self.per_minute:
                    return max(0.001, (minute + 1) * 60 - now)
                try:
                    await self.kv.update(counter, str(count + 1).encode(), last=entry.revision)
                    return 0.0
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue  # counted by another request meanwhile: read again
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("the shared rate limit could not be asked (%s): this process's own applies", exc)
        return self.local.take(key)
