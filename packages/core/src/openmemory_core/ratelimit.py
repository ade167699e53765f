"""Who may knock, and how often.

Per-key rate limits: `SharedRateLimiter` counts each key's requests in a NATS KV bucket, so every
replica of a gateway (or of admin) draws on one allowance; while NATS cannot be asked, a token bucket
in the process (`RateLimiter`) stands in. The gateway uses its `admit`, which counts in the
background, so that a call does not wait on NATS to be counted. `FailedAuthThrottle` counts failed
authentications per client address the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue

from openmemory_core.errors import RateLimited
from openmemory_core.kv import Bucket
from openmemory_core.telemetry import RATE_LIMITED

log = logging.getLogger(__name__)

#: Tries of the compare-and-set increment (each lost race means another request was counted) before
#: a request is judged by the process's own bucket.
SHARED_TRIES = 32
# `admit`: the share of what a process believes is left that it admits before its count is written
# (1/BURST_SHARE). Measured with two replicas bursting 200 requests at once on a limit of 60,
# following each other's counts: at most 63 admitted in 40 runs with 4; up to 78 with 2.
BURST_SHARE = 4


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


@dataclass
class _Tally:
    """One key's requests in one clock minute, as this process knows them (`SharedRateLimiter.admit`)."""

    minute: int
    counted: int = 0  # the shared count (every replica's requests) as this process last saw it
    unsent: int = 0  # admitted here and not yet added to it
    writing: int = 0  # admitted here and being added to it
    synced: bool = False  # whether `counted` was read from the shared count this minute
    unreachable: bool = False  # NATS could not be asked: this process counts alone until it can
    sending: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def left(self, per_minute: int) -> int:
        return per_minute - self.counted - self.unsent - self.writing


class SharedRateLimiter:
    """`per_minute` requests per key in each clock minute, counted in `kv` (a counter per key and
    minute, incremented by compare-and-set, expired by the bucket's TTL) and so shared by every
    process that uses the same bucket.

    `take` asks NATS before answering (two round trips). `admit` keeps them off the request's path
    for most requests: a key's first request of the minute in this process, and every request once
    less than a tenth of the limit is left, is counted before it is answered, exactly as by `take`;
    the others are judged by the shared count as this process last saw it plus what it admitted
    since, and added to the shared count right after, in the background. One process never admits
    more than the limit. With `follow`, every replica learns each count written, by any replica,
    as NATS delivers it; without it, whenever it writes its own. A replica admits at most a quarter
    of what it believes is left before its count is written, and once less than a tenth is left
    every request is counted before it is answered. Replicas bursting on one key in the same moment
    can still pass the limit together, by what one admits before it learns the other's count
    (measured: see BURST_SHARE); every request admitted is counted."""

    def __init__(
        self, kv: KeyValue, per_minute: int, scope: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.kv = kv
        self.per_minute = per_minute
        self.scope = scope  # "gateway", "admin": each service's limit is counted apart
        self.clock = clock
        self.local = RateLimiter(per_minute)
        self._tallies: dict[str, _Tally] = {}
        self._by_counter: dict[str, _Tally] = {}  # the same tallies, by their counter's KV key
        self._feed: Subscription | None = None

    async def follow(self, nc: Nats) -> None:
        """Learn every replica's counts as they are written: the counters are KV entries, and each
        write is a message on `$KV.<bucket>.<scope>.…` carrying the new count. Used by `admit`."""
        if self._feed is None and isinstance(self.kv, Bucket):
            self._feed = await nc.subscribe(f"{self.kv.subject_prefix}{self.scope}.>", cb=self._counted)
            await nc.flush(timeout=5)

    async def _counted(self, msg: Msg) -> None:
        assert isinstance(self.kv, Bucket)
        tally = self._by_counter.get(msg.subject.removeprefix(self.kv.subject_prefix))
        # While this process writes its own count, the write's answer says the rest (and a message
        # read meanwhile may or may not hold what is being written).
        if tally is not None and not tally.writing and msg.data.isdigit():
            tally.counted = max(tally.counted, int(msg.data))

    def _counter(self, key: str, minute: int) -> str:
        return f"{self.scope}.{hashlib.sha256(key.encode()).hexdigest()[:32]}.{minute}"

    async def _count(self, key: str, minute: int, n: int, cap: int | None) -> tuple[int, bool] | None:
        """Add `n` to the key's shared count of `minute`, unless it has reached `cap` already: the
        count after, and whether it was added. None when NATS cannot be asked."""
        counter = self._counter(key, minute)
        try:
            for _ in range(SHARED_TRIES):
                try:
                    entry = await self.kv.get(counter)
                except nats.js.errors.KeyNotFoundError:
                    try:
                        await self.kv.create(counter, str(n).encode())
                        return n, True
                    except nats.js.errors.KeyWrongLastSequenceError:
                        continue  # another replica counted the minute's first request meanwhile
                count = int(entry.value or b"0")
                if cap is not None and count >= cap:
                    return count, False
                try:
                    await self.kv.update(counter, str(count + n).encode(), last=entry.revision)
                    return count + n, True
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue  # counted by another request meanwhile: read again
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("the shared rate limit could not be asked (%s): this process's own applies", exc)
        return None

    async def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until the next minute, when it will."""
        now = self.clock()
        minute = int(now // 60)
        counted = await self._count(key, minute, 1, self.per_minute)
        if counted is None:
            return self.local.take(key)
        return 0.0 if counted[1] else max(0.001, (minute + 1) * 60 - now)

    async def admit(self, key: str) -> float:
        """What `take` answers, without waiting on NATS for most requests (see the class)."""
        now = self.clock()
        minute = int(now // 60)
        wait = max(0.001, (minute + 1) * 60 - now)
        tally = self._tallies.get(key)
        if tally is None or tally.minute < minute:
            if tally is not None:
                self._by_counter.pop(self._counter(key, tally.minute), None)
            tally = self._tallies[key] = _Tally(minute)
            self._by_counter[self._counter(key, minute)] = tally
            if len(self._tallies) > 100_000:  # forget keys idle this minute rather than grow without bound
                self._tallies = {k: t for k, t in self._tallies.items() if t.minute >= minute}
                self._by_counter = {n: t for n, t in self._by_counter.items() if t.minute >= minute}
        margin = max(1, self.per_minute // 10)
        while True:
            if tally.left(self.per_minute) <= 0:
                return wait
            if tally.sending is not None and tally.unsent + tally.writing >= max(
                1, (self.per_minute - tally.counted) // BURST_SHARE
            ):
                await asyncio.shield(tally.sending)  # a burst: its count is written before more go ahead
                continue
            if tally.unreachable or (tally.synced and tally.left(self.per_minute) > margin):
                break
            # The first request of the minute here, or near the limit: counted before it is answered
            # (one at a time), so this process goes on from what every replica counted, and the limit
            # itself is exact.
            async with tally.lock:
                if tally.left(self.per_minute) <= 0:
                    return wait
                if tally.synced and tally.left(self.per_minute) > margin:
                    continue  # counted by the request before this one: judged again, burst rule first
                if tally.sending is not None:
                    await asyncio.shield(tally.sending)
                counted = await self._count(key, minute, 1, self.per_minute - tally.unsent - tally.writing)
                if counted is None:  # NATS cannot be asked: this process's own count applies
                    tally.unreachable = True
                    break
                tally.synced = True
                tally.counted = max(tally.counted, counted[0])
                return 0.0 if counted[1] else wait
        if tally.left(self.per_minute) <= 0:
            return wait
        tally.unsent += 1
        if tally.sending is None:
            tally.sending = asyncio.create_task(self._send(key, tally))
        return 0.0

    async def _send(self, key: str, tally: _Tally) -> None:
        """Add what this process admitted to the shared count, until nothing is left to add. While
        NATS cannot be asked it stays unsent: this process's own count keeps limiting."""
        try:
            while tally.unsent > 0:
                tally.writing, tally.unsent = tally.unsent, 0
                counted = await self._count(key, tally.minute, tally.writing, None)
                if counted is None:
                    tally.unsent, tally.writing = tally.unsent + tally.writing, 0
                    return
                tally.counted = max(tally.counted, counted[0])
                tally.writing, tally.unreachable = 0, False
        finally:
            tally.unsent += tally.writing  # cancelled mid-write: still this process's to count
            tally.writing = 0
            tally.sending = None

    async def settled(self) -> None:
        """Wait until every admitted request is added to the shared count (or failed to be)."""
        pending = [t.sending for t in self._tallies.values() if t.sending is not None]
        if pending:
            await asyncio.wait(pending)

    async def close(self) -> None:
        """Write what is left to count, and stop following the counts."""
        await self.settled()
        feed, self._feed = self._feed, None
        if feed is not None:
            with contextlib.suppress(nats.errors.Error):
                await feed.unsubscribe()

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
