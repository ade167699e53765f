"""Who may knock, and how often.

Per-key rate limits: `SharedRateLimiter` counts each key's requests in a NATS KV bucket, so every
replica of a gateway (or of admin) draws on one allowance; while NATS cannot be asked, a token bucket
in the process (`RateLimiter`) stands in. `FailedAuthThrottle` counts failed authentications per
client address the same way.
"""

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

from openmemory_core.errors import RateLimited
from openmemory_core.telemetry import RATE_LIMITED

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

    def peek(self, key: str) -> float:
        """What `take` would answer, without taking anything."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        rate = self.per_minute / 60.0
        tokens = min(
            float(self.burst or self.per_minute), bucket.tokens + (time.monotonic() - bucket.at) * rate
        )
        return 0.0 if tokens >= 1 else max(0.001, (1 - tokens) / rate)


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

    def _counter(self, key: str, minute: int) -> str:
        return f"{self.scope}.{hashlib.sha256(key.encode()).hexdigest()[:32]}.{minute}"

    async def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until the next minute, when it will."""
        now = self.clock()
        minute = int(now // 60)
        counter = self._counter(key, minute)
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

    async def peek(self, key: str) -> float:
        """What `take` would answer, without counting a request."""
        now = self.clock()
        minute = int(now // 60)
        try:
            entry = await self.kv.get(self._counter(key, minute))
        except nats.js.errors.KeyNotFoundError:
            return 0.0
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("the shared rate limit could not be asked (%s): this process's own applies", exc)
            return self.local.peek(key)
        return max(0.001, (minute + 1) * 60 - now) if int(entry.value or b"0") >= self.per_minute else 0.0


class FailedAuthThrottle:
    """Failed authentications (a bad API key, a failed sign-in) per client address: past
    `per_minute` in a clock minute, the address is refused until the next one, on every replica
    (the counts live in `kv`, like `SharedRateLimiter`'s). `per_minute` 0 turns the throttle off.

    Behind a proxy every client has the proxy's address unless the server trusts its forwarded
    headers. Only a presented credential that fails counts: a request without any is no guess.
    """

    def __init__(
        self, kv: KeyValue, per_minute: int, scope: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.counts = SharedRateLimiter(kv, max(1, per_minute), f"authfail-{scope}", clock)
        # The minute of the last failure this process saw per address: an address without a recent
        # one is not asked about, so requests from good clients cost no extra round trip to NATS.
        # (A client spreading guesses over replicas gets one unasked try per replica and minute.)
        self._recent: dict[str, int] = {}

    async def wait(self, address: str) -> float:
        """0 when a request from `address` may be authenticated, else the seconds to wait."""
        if self.per_minute <= 0 or self._recent.get(address, -2) < int(self.clock() // 60) - 1:
            return 0.0
        return await self.counts.peek(address)

    async def admit(self, address: str) -> None:
        """Refuse (429, `RateLimited`) a request from an address that failed too often this minute."""
        wait = await self.wait(address)
        if wait:
            raise RateLimited(
                f"too many failed sign-ins or bad API keys from this address: retry in {retry_after(wait)} s",
                wait,
            )

    async def failed(self, address: str) -> None:
        """Count a failed authentication from `address`."""
        if self.per_minute <= 0:
            return
        minute = int(self.clock() // 60)
        self._recent[address] = minute
        if len(self._recent) > 100_000:  # forget quiet addresses rather than grow without bound
            self._recent = {a: m for a, m in self._recent.items() if m >= minute - 1}
        await self.counts.take(address)


class RefusalLog:
    """Makes rate-limit refusals visible without flooding the log: every refusal is counted in
    `openmemory_rate_limited_total`, and a key is logged once per clock minute it is refused in.
    `label` names the key for people (its public prefix), never the secret."""

    def __init__(self, service: str, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.clock = clock
        self._logged: dict[str, int] = {}  # key label -> the minute it was last logged in

    def refused(self, label: str, per_minute: int, wait: float) -> None:
        RATE_LIMITED.labels(self.service).inc()
        minute = int(self.clock() // 60)
        if self._logged.get(label) == minute:
            return
        if len(self._logged) > 10_000:  # forget keys not refused lately rather than grow without bound
            self._logged = {k: m for k, m in self._logged.items() if m >= minute - 1}
        self._logged[label] = minute
        log.warning(
            "%s: API key %s reached its rate limit (%s requests per minute); refusing with 429 for "
            "%s s (logged once per key and minute)", self.service, label, per_minute, retry_after(wait),
        )  # fmt: skip
