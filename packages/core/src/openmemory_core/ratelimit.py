"""Per-key rate limits: a token bucket per API key, in each process (each gateway or admin replica
enforces the limit on what it serves)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


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
