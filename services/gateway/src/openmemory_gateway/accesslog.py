"""The access log, written without the caller waiting for it.

Every read that returns memories adds a line to its user's access log (`OM_ACCESS`, shown in the
dashboard). Publishing it durably is a JetStream round trip; a search should not wait for it. `record`
queues the line and returns; a few background tasks publish the queue (each with its JetStream ack).
The queue is bounded: past `MAX_BACKLOG` lines a new one is dropped, and drops and failed publishes
are counted (`openmemory_gateway_access_log_total{outcome}`) and logged at most once a minute; a read
is never failed for want of its log line. At shutdown the queue is published before the bus closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import Counter

from openmemory_core import contracts as c
from openmemory_core.bus import Bus

log = logging.getLogger(__name__)

MAX_BACKLOG = 10_000
PUBLISHERS = 4
CLOSE_SECONDS = 5.0

ACCESS_LOG = Counter(
    "openmemory_gateway_access_log_total",
    "Access log lines by outcome (recorded, failed: not published, dropped: the backlog was full)",
    ["outcome"],
)


class AccessLog:
    def __init__(self, bus: Bus, max_backlog: int = MAX_BACKLOG, publishers: int = PUBLISHERS) -> None:
        self.bus = bus
        self.publishers = publishers
        self._queue: asyncio.Queue[c.AccessRecord] = asyncio.Queue(maxsize=max_backlog)
        self._tasks: list[asyncio.Task[None]] = []
        self._warned: dict[str, float] = {}

    def record(self, record: c.AccessRecord) -> None:
        """Queue one line; never waits, never raises."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._publish()) for _ in range(self.publishers)]
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            ACCESS_LOG.labels("dropped").inc()
            self._warn("dropped", "the access log backlog is full: a read was not logged")

    async def _publish(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self.bus.record_access(record)
                ACCESS_LOG.labels("recorded").inc()
            except Exception:
                ACCESS_LOG.labels("failed").inc()
                self._warn("failed", "could not record an access of %s memories", len(record.memory_ids))
            finally:
                self._queue.task_done()

    def _warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -60.0) >= 60.0:
            self._warned[kind] = now
            log.warning(message + " (logged at most once a minute)", *args)

    async def close(self) -> None:
        """Publish what is queued (for at most `CLOSE_SECONDS`), then stop."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), CLOSE_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
