"""The JetStream side of ingest: pull commands per partition, apply, publish, then ack.

A command is acked only after every write it implies and its events are stored. A failure that
may pass (a store down) is retried with backoff; one that cannot succeed, or that keeps failing,
is parked in the dead-letter stream with its reason, and the caller is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import nats.errors
from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.errors import InvalidInput, OpenMemoryError, StoreUnavailable
from openmemory_core.kv import BUS_DOWN, Bucket
from openmemory_core.requests import record_outcome
from openmemory_core.settings import IngestSettings
from openmemory_core.telemetry import (
    DEAD_LETTERS,
    INGEST_COMMANDS,
    INGEST_PENDING,
    MEMORIES,
    extracted,
    request_id_var,
    stage,
    tracer,
)
from openmemory_ingest.feed import CommandFeed
from openmemory_ingest.service import IngestService

log = logging.getLogger(__name__)


class IngestWorker:
    def __init__(self, bus: Bus, service: IngestService, settings: IngestSettings) -> None:
        self.bus = bus
        self.service = service
        self.settings = settings
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._feeds: list[CommandFeed] = []
        self._requests: Bucket | None = None

    @property
    def running(self) -> bool:
        """Taking commands: started and not stopped."""
        return bool(self._loops) and not self._stopping.is_set()

    async def start(self) -> None:
        self._requests = await self.bus.requests_bucket()
        for partition in range(self.bus.partitions):
            await self.bus.ensure_ingest_consumer(partition, self.settings.ack_wait_seconds)
            feed = CommandFeed(self.bus.nc, c.COMMANDS_STREAM, c.ingest_durable(partition))
            await feed.start()
            self._feeds.append(feed)
            self._loops.append(asyncio.create_task(self._pull(feed), name=f"ingest-p{partition}"))
        self._loops.append(asyncio.create_task(self._gauges(), name="ingest-gauges"))

    async def _gauges(self) -> None:
        """Keep the lag, dead-letter and memory-count gauges current."""
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):
                await self.update_gauges()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.gauge_interval_seconds)

    async def update_gauges(self) -> None:
        pending = 0
        for partition in range(self.bus.partitions):
            info = await self.bus.js.consumer_info(c.COMMANDS_STREAM, c.ingest_durable(partition))
            pending += (info.num_pending or 0) + (info.num_ack_pending or 0)
        INGEST_PENDING.set(pending)
        DEAD_LETTERS.set((await self.bus.js.stream_info(c.DEAD_LETTER_STREAM)).state.messages)
        for state, count in (await self.service.vectors.count_by_state()).items():
            MEMORIES.labels(state).set(count)

    async def stop(self) -> None:
        """Finish the command in hand on each partition, then stop pulling."""
        self._stopping.set()
        for feed in self._feeds:
            feed.wake()  # a partition waiting for its next command stops waiting
        if self._loops:
            await asyncio.wait(self._loops, timeout=self.settings.ack_wait_seconds)
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pull(self, feed: CommandFeed) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    async with contextlib.aclosing(feed.requested()) as commands:
                        async for msg in commands:
                            await self._handle_one(msg)
                            if self._stopping.is_set():
                                break  # the command in hand is done; `feed.stop` hands back any sent since
                except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
                    await asyncio.sleep(0.5)
                except Exception:
                    log.exception("pulling commands failed")
                    await asyncio.sleep(1.0)
        finally:
            await feed.stop()

    async def _handle_one(self, msg: Msg) -> None:
        try:
            await self.handle(msg)
        except Exception:
            # An ack or a dead-letter publish refused while the bus elects a leader: this partition
            # must go on. Unacked, the command comes back after the ack wait, and applying it again
            # changes nothing (ids come from the request id).
            log.exception("handling a command failed; it will be delivered again")

    async def handle(self, msg: Msg) -> None:
        try:
            command = c.CommandEnvelope.model_validate_json(msg.data).command
        except ValidationError as exc:
            await self._park(msg, "unknown", "unknown", f"the command is malformed: {exc.errors()[:3]}")
            return
        token = request_id_var.set(command.request_id)
        parent = extracted(msg.headers)
        try:
            with tracer.start_as_current_span(f"ingest.apply {command.kind}", parent, SpanKind.CONSUMER):
                await self._apply(msg, command)
        finally:
            request_id_var.reset(token)

    async def _apply(self, msg: Msg, command: c.AnyCommand) -> None:
        try:
            async with self._working(msg):
                applied = await self.service.apply(command)
            async with stage("publish_events"):
                for event in applied.events:
                    await self.bus.publish_event(event)
        except InvalidInput as exc:
            await self._park(msg, command.kind, command.request_id, exc.message, command.user_id)
            return
        except Exception as exc:
            await self._retry_or_park(msg, command, exc)
            return
        await msg.ack_sync()
        INGEST_COMMANDS.labels(command.kind, "applied").inc()
        changes = ", ".join(f"{s.event.value} {s.id}" for s in applied.summary) or "nothing"
        sequence = msg.metadata.sequence.stream if msg.metadata else "?"
        log.info("applied %s #%s for user %s: %s", command.kind, sequence, command.user_id, changes)
        result = c.CommandResult(
            request_id=command.request_id, ok=True, results=applied.summary, note=applied.note
        )
        # The record first: a client told the result can ask `get_request` at once and read it.
        await self._record(command.user_id, command.kind, result)
        await self.bus.publish_result(result)

    async def _record(self, user_id: str, kind: str, result: c.CommandResult) -> None:
        if self._requests is not None:
            await record_outcome(self._requests, user_id, kind, result)

    @contextlib.asynccontextmanager
    async def _working(self, msg: Msg) -> AsyncIterator[None]:
        """Tell JetStream the command is still being worked on, so a long one (a slow model, a
        re-embed) is not handed to another worker meanwhile."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.settings.ack_wait_seconds / 3)
                with contextlib.suppress(Exception):
                    await msg.in_progress()

        heartbeat = asyncio.create_task(beat())
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _retry_or_park(self, msg: Msg, command: c.AnyCommand, exc: Exception) -> None:
        kind, request_id = command.kind, command.request_id
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        reason = exc.message if isinstance(exc, OpenMemoryError) else f"{type(exc).__name__}: {exc}"
        # A store that is down (the bus included: an election leaves a stream without a leader for
        # seconds) stops every command alike: they wait for it, in order, far longer than a command
        # that fails on its own (a model's refusal, a bug) is retried.
        limit = (
            self.settings.store_down_max_deliver
            if isinstance(exc, (StoreUnavailable, *BUS_DOWN))
            else self.settings.max_deliver
        )
        if delivered >= limit:
            await self._park(
                msg, kind, request_id, f"failed {delivered} times; last error: {reason}", command.user_id
            )
            return
        delay = min(
            self.settings.max_backoff_seconds, self.settings.retry_backoff_seconds * 2 ** (delivered - 1)
        )
        log.warning(
            "command %s failed (attempt %s), retrying in %.1fs: %s", request_id, delivered, delay, reason
        )
        INGEST_COMMANDS.labels(kind, "retried").inc()
        await msg.nak(delay=delay)

    async def _park(
        self, msg: Msg, kind: str, request_id: str, reason: str, user_id: str | None = None
    ) -> None:
        log.error("command %s parked in the dead letters: %s", request_id, reason)
        letter = c.DeadLetter(
            request_id=request_id,
            subject=msg.subject,
            error=reason,
            payload=msg.data.decode(errors="replace"),
            command_sequence=msg.metadata.sequence.stream if msg.metadata else None,
        )
        await self.bus.publish_dead_letter(letter)
        await msg.ack_sync()  # the dead-letter stream holds it now
        INGEST_COMMANDS.labels(kind, "dead_lettered").inc()
        result = c.CommandResult(request_id=request_id, ok=False, error=reason)
        if user_id is not None:  # a command too malformed to name its user is in the dead letters only
            await self._record(user_id, kind, result)
        await self.bus.publish_result(result)
