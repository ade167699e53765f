"""The JetStream side of ingest: pull commands per partition, apply, publish, then ack.

A command is acked only after every write it implies and its events are stored. A failure that
may pass (a store down) is retried with backoff; one that cannot succeed, or that keeps failing,
is parked in the dead-letter stream with its reason, and the caller is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.errors import InvalidInput, OpenMemoryError
from openmemory_core.settings import IngestSettings
from pydantic import ValidationError

from openmemory_ingest.service import IngestService

log = logging.getLogger(__name__)


class IngestWorker:
    def __init__(self, bus: Bus, service: IngestService, settings: IngestSettings) -> None:
        self.bus = bus
        self.service = service
        self.settings = settings
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for partition in range(self.bus.partitions):
            sub = await self.bus.ensure_ingest_consumer(partition, self.settings.ack_wait_seconds)
            self._loops.append(asyncio.create_task(self._pull(sub), name=f"ingest-p{partition}"))

    async def stop(self) -> None:
        """Finish the command in hand on each partition, then stop pulling."""
        self._stopping.set()
        if self._loops:
            await asyncio.wait(self._loops, timeout=self.settings.ack_wait_seconds)
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pull(self, sub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await sub.fetch(1, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
                await asyncio.sleep(0.5)
                continue
            except Exception:
                log.exception("fetching commands failed")
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        try:
            command = c.CommandEnvelope.model_validate_json(msg.data).command
        except ValidationError as exc:
            await self._park(msg, "unknown", f"the command is malformed: {exc.errors()[:3]}")
            return
        try:
            applied = await self.service.apply(command)
            for event in applied.events:
                await self.bus.publish_event(event)
        except InvalidInput as exc:
            await self._park(msg, command.request_id, exc.message)
            return
        except Exception as exc:
            await self._retry_or_park(msg, command.request_id, exc)
            return
        await msg.ack_sync()
        await self.bus.publish_result(
            c.CommandResult(request_id=command.request_id, ok=True, results=applied.summary)
        )

    async def _retry_or_park(self, msg: Msg, request_id: str, exc: Exception) -> None:
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        reason = exc.message if isinstance(exc, OpenMemoryError) else f"{type(exc).__name__}: {exc}"
        if delivered >= self.settings.max_deliver:
            await self._park(msg, request_id, f"failed {delivered} times; last error: {reason}")
            return
        delay = self.settings.retry_backoff_seconds * 2 ** (delivered - 1)
        log.warning(
            "command %s failed (attempt %s), retrying in %.1fs: %s", request_id, delivered, delay, reason
        )
        await msg.nak(delay=delay)

    async def _park(self, msg: Msg, request_id: str, reason: str) -> None:
        log.error("command %s parked in the dead letters: %s", request_id, reason)
        letter = c.DeadLetter(
            request_id=request_id,
            subject=msg.subject,
            error=reason,
            payload=msg.data.decode(errors="replace"),
        )
        await self.bus.publish_dead_letter(letter)
        await msg.ack_sync()  # the dead-letter stream holds it now
        await self.bus.publish_result(c.CommandResult(request_id=request_id, ok=False, error=reason))
