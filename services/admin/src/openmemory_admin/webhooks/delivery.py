"""Delivering events to webhooks: at least once, in order, each registration on its own.

Every registration has its own durable pull consumer on OM_EVENTS (`webhook-<id>`), filtered to its
user's subject (`om.evt.>` for an operator's registration for every user), with
`max_ack_pending=1`: one delivery in flight per registration, so its events arrive in stream order
(which is each user's order), and a failing endpoint holds back only its own consumer, never another
registration's. Each consumer keeps its own place in the stream, so a process that stops or crashes
resumes where it was: an event is acked only after the endpoint answered 2xx (at least once; the
event id header lets a receiver drop a repeat).

A failed attempt is a `nak` with a delay (`backoff_base_seconds` doubled per attempt, at most
`backoff_max_seconds`): JetStream redelivers the same event after the delay and delivers nothing
behind it meanwhile. The attempt count is JetStream's delivery count, so it survives restarts. After
`max_attempts` the delivery is set aside in `OM_WEBHOOK_FAILURES` (`om.webhook.failed.<id>`, where
the webhook's owner sees it and can send it again) and the consumer moves on.

Several admin replicas may run: they pull from the same consumers, and `max_ack_pending=1` still
allows one delivery at a time. Each process bounds its deliveries in flight (`concurrency`); while a
delivery waits for a slot or for the endpoint it keeps its message (`in_progress`), so JetStream does
not hand it to another replica meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from prometheus_client import Counter
from pydantic import BaseModel, Field, ValidationError

from openmemory_admin.webhooks.records import WebhookRecord, WebhookRegistry
from openmemory_admin.webhooks.signing import (
    ATTEMPT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    signature_header,
)
from openmemory_admin.webhooks.transport import WebhookTransport
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.kv import open_bucket
from openmemory_core.outbound import refused_cause
from openmemory_core.sealed import sealer_for
from openmemory_core.settings import Settings, WebhookSettings

log = logging.getLogger(__name__)

USER_AGENT = "OpenMemory-Webhooks/1"
#: Failed deliveries kept per registration (the oldest go first).
FAILURES_KEPT = 1000
ORPHAN_SWEEP_SECONDS = 60.0
FETCH_WAIT_SECONDS = 2.0  # how long a stopping loop can take to notice

DELIVERIES = Counter(
    "openmemory_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, retry, dead_letter)",
    ["outcome"],
)


class WebhookFailure(BaseModel):
    """A delivery that failed every attempt: what was sent, where, and the last error."""

    registration_id: str
    user_id: str
    event_id: str
    change: c.ChangeKind
    memory_id: str
    event_sequence: int
    attempts: int
    error: str
    at: datetime = Field(default_factory=c.now)
    event: str  # the event as delivered (JSON)


def backoff(attempt: int, settings: WebhookSettings) -> float:
    """The wait after the `attempt`-th failed attempt (1-based)."""
    return float(min(settings.backoff_base_seconds * 2 ** min(attempt - 1, 30), settings.backoff_max_seconds))


def ack_wait(settings: WebhookSettings) -> float:
    """How long JetStream waits for an answer on a delivery before handing it out again: longer than
    a delivery can take (heartbeats cover the wait for a slot)."""
    return settings.timeout_seconds * 3 + 5


def body_of(registration_id: str, event_json: bytes) -> bytes:
    """What is posted: the registration's id and the event exactly as it was stored."""
    return b'{"webhook_id":"' + registration_id.encode() + b'","event":' + event_json + b"}"


# ---- the streams and consumers ---------------------------------------------------------------


async def ensure_failures_stream(bus: Bus) -> None:
    config = StreamConfig(
        name=c.WEBHOOK_FAILURES_STREAM,
        subjects=[f"{c.WEBHOOK_FAILURES_SUBJECT_PREFIX}.>"],
        storage=StorageType.FILE,
        num_replicas=bus.replicas,
        retention=RetentionPolicy.LIMITS,
        max_msgs_per_subject=FAILURES_KEPT,
        duplicate_window=600.0,
    )
    try:
        await bus.js.stream_info(c.WEBHOOK_FAILURES_STREAM)
    except nats.js.errors.NotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):  # made by a sibling meanwhile
            await bus.js.add_stream(config)


async def next_event_sequence(bus: Bus) -> int:
    """The sequence the next event will have: where a new registration starts."""
    return int((await bus.js.stream_info(c.EVENTS_STREAM)).state.last_seq) + 1


async def ensure_consumer(js: JetStreamContext, record: WebhookRecord, settings: WebhookSettings) -> None:
    """The registration's durable consumer (the same config from every caller: creating it twice is
    harmless)."""
    config = ConsumerConfig(
        durable_name=c.webhook_durable(record.id),
        filter_subject=record.filter_subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=record.start_sequence,
        max_ack_pending=1,  # one delivery in flight: the endpoint sees events in order
        max_deliver=-1,  # the dispatcher sets a delivery aside itself, after max_attempts
        ack_wait=ack_wait(settings),
    )
    try:
        await js.consumer_info(c.EVENTS_STREAM, c.webhook_durable(record.id))
    except nats.js.errors.NotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await js.add_consumer(c.EVENTS_STREAM, config)


async def forget(bus: Bus, registration_id: str) -> None:
    """Delete a registration's consumer and its failed deliveries (its record is already gone)."""
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await bus.js.delete_consumer(c.EVENTS_STREAM, c.webhook_durable(registration_id))
    with contextlib.suppress(nats.js.errors.NotFoundError):
        subject = c.webhook_failure_subject(registration_id)
        await bus.js.purge_stream(c.WEBHOOK_FAILURES_STREAM, subject=subject)


async def failures_of(bus: Bus, record: WebhookRecord) -> list[tuple[int, WebhookFailure]]:
    found = await bus.read_subject(c.WEBHOOK_FAILURES_STREAM, c.webhook_failure_subject(record.id))
    return [(m.metadata.sequence.stream, WebhookFailure.model_validate_json(m.data)) for m in found]


async def failure_at(bus: Bus, sequence: int) -> WebhookFailure | None:
    try:
        raw = await bus.js.get_msg(c.WEBHOOK_FAILURES_STREAM, sequence)
    except nats.js.errors.NotFoundError:
        return None
    if not (raw.subject or "").startswith(f"{c.WEBHOOK_FAILURES_SUBJECT_PREFIX}.") or raw.data is None:
        return None
    return WebhookFailure.model_validate_json(raw.data)


# ---- sending ---------------------------------------------------------------------------------


class Sender:
    """Posts one signed delivery. The host is checked before every request, and the connection once
    made (`WebhookTransport`: a name can resolve to another address later), unless private targets
    are allowed; redirects are not followed (they could point anywhere); proxies from the
    environment are not used (they would bypass the check); the response's body is never read; the
    whole attempt has one deadline."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        transport = httpx.AsyncHTTPTransport() if settings.allow_private else WebhookTransport()
        self.http = httpx.AsyncClient(
            transport=transport, timeout=settings.timeout_seconds, follow_redirects=False, trust_env=False
        )

    async def send(
        self, record: WebhookRecord, secret: str, event_id: str, body: bytes, attempt: int
    ) -> str | None:
        """None when the endpoint answered 2xx; otherwise why not, in words fit for the owner."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(secret, body),
            EVENT_ID_HEADER: event_id,
            WEBHOOK_ID_HEADER: record.id,
            ATTEMPT_HEADER: str(attempt),
        }
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                async with self.http.stream("POST", record.url, content=body, headers=headers) as response:
                    status = response.status_code
        except TimeoutError:
            return f"no answer within {self.settings.timeout_seconds:g} s"
        except Exception as exc:
            if refused_cause(exc) is not None:
                return "refused: the host is, or resolves to, a loopback, private or link-local address"
            if isinstance(exc, httpx.HTTPError):
                return f"could not deliver: {type(exc).__name__}"
            raise
        if 200 <= status < 300:
            return None
        return f"the endpoint answered HTTP {status}"

    async def close(self) -> None:
        await self.http.aclose()


@dataclass
class Webhooks:
    """What the routes and the dispatcher share: the registrations and the sender."""

    registry: WebhookRegistry
    sender: Sender

    @property
    def settings(self) -> WebhookSettings:
        return self.registry.settings

    @classmethod
    async def open(cls, bus: Bus, settings: Settings) -> Webhooks:
        bucket = await open_bucket(bus.js, c.WEBHOOKS_BUCKET, replicas=bus.replicas)
        await ensure_failures_stream(bus)
        registry = WebhookRegistry(bucket, settings.webhooks, sealer_for(settings.core))
        return cls(registry, Sender(settings.webhooks))

    async def attempt(self, record: WebhookRecord, event_id: str, body: bytes, attempt: int) -> str | None:
        """One delivery attempt: None when delivered, else the reason."""
        secret = self.registry.secret_of(record)
        if secret is None:
            return "the signing secret cannot be opened: was OPENMEMORY_SECRETS_KEY changed?"
        return await self.sender.send(record, secret, event_id, body, attempt)

    async def close(self) -> None:
        await self.sender.close()


@contextlib.asynccontextmanager
async def kept(msg: Msg, every: float) -> AsyncIterator[None]:
    """Tell JetStream every `every` seconds that the message is still being worked on."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- the dispatcher --------------------------------------------------------------------------


class WebhookDispatcher:
    """Runs one delivery loop per enabled registration, following the registrations in KV."""

    def __init__(self, bus: Bus, webhooks: Webhooks) -> None:
        self.bus = bus
        self.webhooks = webhooks
        self.registry = webhooks.registry
        self.settings = webhooks.settings
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._loops: dict[str, tuple[WebhookRecord, asyncio.Task[None], asyncio.Event]] = {}
        self._seen_revision = -1
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # every loop, stopping ones included

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="webhooks")

    async def stop(self) -> None:
        """Let each loop end after its fetch (giving back an event it just got), then cancel what is
        still delivering: that event is delivered again after `ack_wait`."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        for _, _, stopping in self._loops.values():
            stopping.set()
        self._loops.clear()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=FETCH_WAIT_SECONDS + 1)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _supervise(self) -> None:
        swept = 0.0
        while True:
            try:
                await self._follow_registrations()
                if time.monotonic() - swept > ORPHAN_SWEEP_SECONDS:
                    await self._drop_orphans()
                    swept = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("webhooks: reading the registrations failed; trying again", exc_info=True)
            await asyncio.sleep(self.settings.refresh_seconds)

    async def _follow_registrations(self) -> None:
        """Start a loop for each new enabled registration, stop those removed, disabled or changed.
        The bucket's last sequence tells whether anything changed since the last look."""
        info = await self.bus.js.stream_info(self.registry.bucket.stream_name)
        revision = int(info.state.last_seq)
        if revision == self._seen_revision:
            return
        wanted = {r.id: r for r in await self.registry.every() if r.enabled}
        for registration_id, (record, task, stopping) in list(self._loops.items()):
            if wanted.get(registration_id) != record or task.done():
                # Not cancelled: a cancelled fetch leaves its pull request on the server, and the
                # event it then hands out waits for `ack_wait`. The loop ends after its fetch instead,
                # giving back (nak) an event it got meanwhile, which is then the next one delivered.
                stopping.set()
                del self._loops[registration_id]
        for registration_id, record in wanted.items():
            if registration_id not in self._loops:
                stopping = asyncio.Event()
                task = asyncio.create_task(self._serve(record, stopping), name=f"webhook-{registration_id}")
                self._loops[registration_id] = (record, task, stopping)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self._seen_revision = revision

    async def _drop_orphans(self) -> None:
        """Delete consumers whose registration is gone (a removal that could not delete its consumer).
        The consumers are listed before the records: a registration stores its record before it
        makes its consumer, so a consumer being made now always has its record."""
        names: list[str] = []
        offset = 0
        for _ in range(100):
            page = await self.bus.js.consumers_info(c.EVENTS_STREAM, offset=offset)
            names += [i.name for i in page if i.name and i.name.startswith(c.WEBHOOK_DURABLE_PREFIX)]
            offset += len(page)
            if len(page) < 256:
                break
        if not names:
            return
        known = {c.webhook_durable(r.id) for r in await self.registry.every()}
        for name in names:
            if name not in known:
                log.info("webhooks: deleting the consumer %s of a removed registration", name)
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await self.bus.js.delete_consumer(c.EVENTS_STREAM, name)

    async def _serve(self, record: WebhookRecord, stopping: asyncio.Event) -> None:
        """Deliver the registration's events one by one, until `stopping`."""
        while not stopping.is_set():
            sub: Any = None
            try:
                # Checked before each (re)start: the loop of a registration removed meanwhile must
                # not make its consumer again, nor deliver once more, before the supervisor stops it.
                if not await self.registry.still(record):
                    return
                await ensure_consumer(self.bus.js, record, self.settings)
                sub = await self.bus.js.pull_subscribe_bind(
                    durable=c.webhook_durable(record.id), stream=c.EVENTS_STREAM
                )
                while not stopping.is_set():
                    try:
                        msgs = await sub.fetch(1, timeout=FETCH_WAIT_SECONDS)
                    except nats.errors.TimeoutError:
                        continue
                    for msg in msgs:
                        if stopping.is_set():
                            await msg.nak()
                            return
                        await self._handle(record, msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook %s: %s; trying again shortly", record.id, exc)
                await asyncio.sleep(2.0)
            finally:
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()

    async def _handle(self, record: WebhookRecord, msg: Msg) -> None:
        try:
            event = c.MemoryEvent.model_validate_json(msg.data)
        except ValidationError:
            log.error("webhook %s: an event that does not parse, skipped", record.id)
            await msg.ack()
            return
        if not record.wants(event.change):
            await msg.ack()
            return
        attempt = msg.metadata.num_delivered or 1
        body = body_of(record.id, msg.data)
        async with kept(msg, ack_wait(self.settings) / 3), self._slots:
            error = await self.webhooks.attempt(record, event.event_id, body, attempt)
        if error is None:
            DELIVERIES.labels("delivered").inc()
            await msg.ack()
        elif attempt >= self.settings.max_attempts:
            DELIVERIES.labels("dead_letter").inc()
            await self._set_aside(record, event, msg, attempt, error)
            await msg.ack()
        else:
            DELIVERIES.labels("retry").inc()
            await msg.nak(delay=backoff(attempt, self.settings))

    async def _set_aside(
        self, record: WebhookRecord, event: c.MemoryEvent, msg: Msg, attempts: int, error: str
    ) -> None:
        sequence = msg.metadata.sequence.stream
        failure = WebhookFailure(
            registration_id=record.id, user_id=event.user_id, event_id=event.event_id,
            change=event.change, memory_id=str(event.memory_id), event_sequence=sequence,
            attempts=attempts, error=error, event=msg.data.decode(),
        )  # fmt: skip
        log.warning(
            "webhook %s: event %s set aside after %d attempts: %s", record.id, sequence, attempts, error
        )
        await self.bus.js.publish(
            c.webhook_failure_subject(record.id),
            failure.model_dump_json().encode(),
            headers={"Nats-Msg-Id": f"whf:{record.id}:{sequence}:{attempts}"},
            timeout=5.0,
        )
