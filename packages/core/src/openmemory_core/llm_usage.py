"""LLM tokens spent per user and UTC day, and by everyone, shared by every ingest replica.

The counts live in a NATS KV bucket (`contracts.LLM_USAGE_BUCKET`), one counter per key and day,
incremented by compare-and-set like `ratelimit.SharedRateLimiter`'s per-minute counts and expired
by the bucket's TTL: `llm.<sha256(user)[:32]>.<YYYY-MM-DD>` for a user, `llm.all.<YYYY-MM-DD>` for
everyone. Ingest asks `spent` before each LLM call and `add`s what the call used; the admin API
reads `today` for the dashboard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

#: Tries of the compare-and-set increment (each lost race means another call was counted meanwhile).
TRIES = 32


def user_key(user_id: str, day: str) -> str:
    return f"llm.{hashlib.sha256(user_id.encode()).hexdigest()[:32]}.{day}"


def all_key(day: str) -> str:
    return f"llm.all.{day}"


def limited(limit: int | None) -> bool:
    """Whether a budget setting limits anything (0 and None do not)."""
    return bool(limit)


class LLMUsage:
    """Token counts per user and day, and for everyone, in `kv`."""

    def __init__(self, kv: KeyValue, clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.clock = clock

    def day(self) -> str:
        """Today, in UTC (budgets start again at midnight UTC)."""
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).date().isoformat()

    async def _read(self, key: str) -> int:
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return 0
        return int(entry.value or b"0")

    async def today(self, user_id: str | None) -> int:
        """Tokens spent today by `user_id`, or by everyone for None."""
        day = self.day()
        return await self._read(user_key(user_id, day) if user_id is not None else all_key(day))

    async def spent(self, user_id: str | None, per_user: int | None, total: int | None) -> str | None:
        """Why no more LLM calls may be made today for `user_id` (None: they may). A count that
        cannot be read lets the call go ahead: a budget bounds cost, it must not stop ingest."""
        try:
            if limited(total) and await self.today(None) >= (total or 0):
                return f"the server's daily LLM budget ({total} tokens) is spent"
            if user_id is not None and limited(per_user) and await self.today(user_id) >= (per_user or 0):
                return f"this user's daily LLM budget ({per_user} tokens) is spent"
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("the LLM budget could not be read (%s): the call goes ahead", exc)
        return None

    async def add(self, user_id: str | None, tokens: int) -> None:
        """Count `tokens` for `user_id` (if any) and for everyone, today."""
        if tokens <= 0:
            return
        day = self.day()
        keys = ([user_key(user_id, day)] if user_id is not None else []) + [all_key(day)]
        try:
            for key in keys:
                await self._increment(key, tokens)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("LLM tokens could not be counted (%s): %s tokens go uncounted", exc, tokens)

    async def _increment(self, key: str, tokens: int) -> None:
        for _ in range(TRIES):
            try:
                entry = await self.kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                try:
                    await self.kv.create(key, str(tokens).encode())
                    return
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue  # another replica counted the day's first call meanwhile
            try:
                count = int(entry.value or b"0") + tokens
                await self.kv.update(key, str(count).encode(), last=entry.revision)
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # counted by another call meanwhile: read again
        log.warning("LLM tokens could not be counted under %s after %s tries", key, TRIES)
