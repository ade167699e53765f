"""The NATS bus: JetStream topology, durable commands, request/reply queries, results.

Every service talks to every other only through this module, with the names in `contracts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from openmemory_core import contracts as c
from openmemory_core import guard
from openmemory_core.errors import (
    Busy,
    InvalidInput,
    OpenMemoryError,
    StoreUnavailable,
    Unavailable,
    error_from_code,
)
from openmemory_core.kv import (
    BUS_DOWN,
    Bucket,
    asked_again,
    open_bucket,
    replicas_refused,
    scale_stream,
    unreachable,
)
from openmemory_core.settings import CoreSettings
from openmemory_core.telemetry import QUERY_DURATION, extracted, inject, tracer

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
#: How long a search worker that lost its NATS connection takes to subscribe again through another
#: node: a query no one served is asked again after this (`Bus.query`).
RESUBSCRIBE_SECONDS = 0.5
QueryHandler = Callable[[dict[str, Any]], Awaitable[BaseModel]]


class Bus:
    """One NATS connection with the JetStream context and the project's topology on it."""

    def __init__(self, nc: NatsClient, partitions: int, replicas: int = 1) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.partitions = partitions
        self.replicas = replicas
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._backlog: dict[int, tuple[float, int]] = {}

    @classmethod
    async def connect(
        cls,
        url: str,
        name: str,
        partitions: int,
        connect_timeout: float = 5.0,
        replicas: int | None = None,
    ) -> Bus:
        """Connect (waiting for a server that is not up yet) and ensure the topology. Credentials
        travel in the URL (`nats://user:password@host:port`); a server that refuses them fails the
        call at once, instead of being asked again forever. A URL may list several servers of a
        cluster, comma-separated. `replicas` (default: `OPENMEMORY_NATS_REPLICAS`) is how many
        copies every stream and bucket keeps."""
        if replicas is None:
            replicas = CoreSettings().nats_replicas
        servers = [u.strip() for u in url.split(",") if u.strip()]
        first = urlsplit(servers[0]) if servers else None
        options: dict[str, Any] = {  # nats-py annotates these seconds as int; it takes floats
            "connect_timeout": connect_timeout,
            "reconnect_time_wait": 0.5,
        }
        if first is not None and first.username and first.password is not None:
            # The servers a cluster announces come without credentials: give them to every one.
            options |= {"user": unquote(first.username), "password": unquote(first.password)}
        connecting, given_up = True, False

        async def on_error(exc: Exception) -> None:
            if given_up:  # closing the socket a refusing server reset
                return
            if connecting and _refused(exc):
                raise Unavailable(f"NATS at {redacted(url)} refused the credentials: {exc}")
            log.error("nats: encountered error", exc_info=exc)

        nc = NatsClient()
        try:
            await nc.connect(
                servers,
                name=name,
                max_reconnect_attempts=-1,
                allow_reconnect=True,
                drain_timeout=5,
                error_cb=on_error,
                **options,
            )
        except Unavailable:
            given_up = True
            await nc.close()
            raise
        except (OSError, nats.errors.NoServersError, TimeoutError) as exc:
            given_up = True
            await nc.close()
            raise Unavailable(f"cannot reach NATS at {redacted(url)}: {exc}") from exc
        connecting = False
        bus = cls(nc, partitions, replicas)
        await bus.ensure_topology()
        return bus

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def ensure_topology(self) -> None:
        """Create the streams and buckets every service relies on; harmless when they exist."""
        await self._ensure_stream(
            StreamConfig(
                name=c.COMMANDS_STREAM,
                subjects=[f"{c.COMMANDS_SUBJECT_PREFIX}.>"],
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                retention=RetentionPolicy.WORK_QUEUE,
                duplicate_window=600.0,
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=c.EVENTS_STREAM,
                subjects=[f"{c.EVENTS_SUBJECT_PREFIX}.>"],
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                retention=RetentionPolicy.LIMITS,
                duplicate_window=600.0,
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=c.DEAD_LETTER_STREAM,
                subjects=[c.DEAD_LETTER_SUBJECT],
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                retention=RetentionPolicy.LIMITS,
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=c.ACCESS_STREAM,
                subjects=[f"{c.ACCESS_SUBJECT_PREFIX}.>"],
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                retention=RetentionPolicy.LIMITS,
                max_msgs_per_subject=10_000,  # the access log keeps each user's latest 10,000 reads
            )
        )
        await self.keys_bucket()
        await self.apps_bucket()
        await self.settings_bucket()
        await self.rate_bucket()
        await self.requests_bucket()
        await self.llm_usage_bucket()

    async def _ensure_stream(self, config: StreamConfig) -> None:
        assert config.name is not None
        try:
            info = await self.js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:  # created by a sibling meanwhile
                pass
            except nats.js.errors.APIError as exc:
                raise replicas_refused(config.name, self.replicas, exc) from exc
            return
        await scale_stream(self.js, info.config, self.replicas)

    async def keys_bucket(self) -> Bucket:
        return await self._bucket(c.KEYS_BUCKET)

    async def apps_bucket(self) -> Bucket:
        return await self._bucket(c.APPS_BUCKET)

    async def settings_bucket(self) -> Bucket:
        return await self._bucket(c.SETTINGS_BUCKET)

    async def rate_bucket(self) -> Bucket:
        """Request counts per key and minute, each kept two minutes. On file like every bucket: a NATS
        that an operator runs may allow no memory storage."""
        return await self._bucket(c.RATE_BUCKET, history=1, ttl=120.0)

    async def requests_bucket(self) -> Bucket:
        """How each accepted command ended (`openmemory_core.requests`), kept a day."""
        return await self._bucket(c.REQUESTS_BUCKET, history=1, ttl=c.REQUEST_RECORD_TTL_SECONDS)

    async def llm_usage_bucket(self) -> Bucket:
        """LLM tokens spent per user and day (`openmemory_core.llm_usage`), each counter kept two days."""
        return await self._bucket(c.LLM_USAGE_BUCKET, history=1, ttl=2 * 24 * 3600.0)

    async def _bucket(self, name: str, history: int = 5, ttl: float | None = None) -> Bucket:
        return await open_bucket(self.js, name, history, ttl, self.replicas)

    # ---- commands ------------------------------------------------------------------------------

    async def publish_command(self, command: c.AnyCommand) -> bool:
        """Store a command durably; returns False when JetStream saw this request id already. Every
        write passes the write guard first (`guard`): a secret is redacted or refused here."""
        command = await guard.checked(command, self.settings_bucket)
        payload = c.CommandEnvelope(command=command).model_dump_json().encode()
        subject = c.command_subject(command.user_id, self.partitions)
        try:
            with tracer.start_as_current_span(f"publish {command.kind}", kind=SpanKind.PRODUCER):
                headers = inject({"Nats-Msg-Id": command.request_id})
                ack = await self.js.publish(subject, payload, headers=headers, timeout=5.0)
        except BUS_DOWN as exc:
            raise Unavailable(f"the command bus did not confirm the request: {exc}") from exc
        return not ack.duplicate

    async def backlog(self, user_id: str) -> int:
        """Commands stored and not yet applied in the user's partition (read at most twice a second)."""
        partition = c.partition_of(user_id, self.partitions)
        cached = self._backlog.get(partition)
        if cached is not None and time.monotonic() - cached[0] < 0.5:
            return cached[1]
        try:
            try:
                info = await self.js.consumer_info(c.COMMANDS_STREAM, c.ingest_durable(partition))
                waiting = (info.num_pending or 0) + (info.num_ack_pending or 0)
            except nats.js.errors.NotFoundError:  # no ingest has ever run: count what the stream holds
                info_stream = await self.js.stream_info(
                    c.COMMANDS_STREAM, subjects_filter=c.partition_subject(partition)
                )
                waiting = (info_stream.state.subjects or {}).get(c.partition_subject(partition), 0)
        except BUS_DOWN as exc:  # e.g. the consumer's leader is being elected
            raise unreachable(exc, "nothing was stored: ") from exc
        self._backlog[partition] = (time.monotonic(), waiting)
        return waiting

    async def ensure_ingest_consumer(self, partition: int, ack_wait: float) -> None:
        """The partition's durable pull consumer (`c.ingest_durable`); ingest pulls from it through
        `openmemory_ingest.feed.CommandFeed`."""
        durable = c.ingest_durable(partition)
        config = ConsumerConfig(
            durable_name=durable,
            filter_subject=c.partition_subject(partition),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            # One command in flight per partition: a user's commands are applied in order,
            # whatever the number of ingest workers pulling from it.
            max_ack_pending=1,
            ack_wait=ack_wait,
        )
        try:
            await self.js.consumer_info(c.COMMANDS_STREAM, durable)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await self.js.add_consumer(c.COMMANDS_STREAM, config)

    async def publish_event(self, event: c.MemoryEvent) -> None:
        """Store an event; `StoreUnavailable` while JetStream cannot take it (no stream leader during
        an election, a reconnect): the command that made it waits for the bus like for any store."""
        try:
            await self.js.publish(
                c.event_subject(event.user_id),
                event.model_dump_json().encode(),
                headers=inject({"Nats-Msg-Id": f"{event.request_id}:{event.memory_id}:{event.change.value}"}),
                timeout=5.0,
            )
        except BUS_DOWN as exc:
            raise StoreUnavailable(f"the events stream (NATS) did not store the event: {exc!r}") from exc

    async def events_of(self, user_id: str, batch: int = 256) -> list[c.MemoryEvent]:
        """Every stored event of one user, oldest first."""
        found = await self.read_subject(c.EVENTS_STREAM, c.event_subject(user_id), batch)
        return [c.MemoryEvent.model_validate_json(m.data) for m in found]

    async def events_after(self, sequence: int, batch: int = 512) -> list[tuple[int, c.MemoryEvent]]:
        """Up to `batch` events of every user stored after stream sequence `sequence`, in order."""
        info = await self.js.stream_info(c.EVENTS_STREAM)
        if info.state.last_seq <= sequence:
            return []
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=sequence + 1,
            ack_policy=AckPolicy.NONE, inactive_threshold=30.0,
        )  # fmt: skip
        msgs = await self._read(c.EVENTS_STREAM, f"{c.EVENTS_SUBJECT_PREFIX}.>", config, batch, whole=False)
        return [(m.metadata.sequence.stream, c.MemoryEvent.model_validate_json(m.data)) for m in msgs]

    async def _read(
        self, stream: str, subject: str, config: ConsumerConfig, batch: int, whole: bool
    ) -> list[Msg]:
        """Messages through an ephemeral consumer, deleted afterwards: one batch, or (`whole`) every
        message up to the end of the stream."""
        sub = await self.js.pull_subscribe(subject, stream=stream, config=config)
        found: list[Msg] = []
        try:
            while True:
                try:
                    msgs = await sub.fetch(batch, timeout=2.0)
                except nats.errors.TimeoutError:
                    if whole:
                        raise
                    return found
                found.extend(msgs)
                if not whole or not msgs or msgs[-1].metadata.num_pending == 0:
                    return found
        finally:
            await self._drop(sub, stream)

    async def _drop(self, sub: JetStreamContext.PullSubscription, stream: str) -> None:
        """Delete a reader's ephemeral consumer now: left to expire, they pile up under load until the
        server refuses new ones."""
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
            await self.js.delete_consumer(stream, sub._consumer)
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()

    async def record_access(self, record: c.AccessRecord) -> None:
        await self.js.publish(
            c.access_subject(record.user_id), record.model_dump_json().encode(), timeout=5.0
        )

    async def accesses_of(self, user_id: str) -> list[c.AccessRecord]:
        """One user's access log, oldest first."""
        found = await self.read_subject(c.ACCESS_STREAM, c.access_subject(user_id))
        return [c.AccessRecord.model_validate_json(m.data) for m in found]

    async def read_subject(self, stream: str, subject: str, batch: int = 256) -> list[Msg]:
        """Every stored message of one subject, oldest first (an ephemeral consumer)."""
        info = await self.js.stream_info(stream, subjects_filter=subject)
        if not (info.state.subjects or {}).get(subject):
            return []
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0
        )
        return await self._read(stream, subject, config, batch, whole=True)

    async def dead_letters(self) -> list[tuple[int, c.DeadLetter]]:
        """Every parked command with its stream sequence, oldest first."""
        found = await self.read_subject(c.DEAD_LETTER_STREAM, c.DEAD_LETTER_SUBJECT)
        return [(m.metadata.sequence.stream, c.DeadLetter.model_validate_json(m.data)) for m in found]

    async def discard_dead_letter(self, sequence: int) -> None:
        await self.js.delete_msg(c.DEAD_LETTER_STREAM, sequence)

    async def retry_dead_letter(self, sequence: int, letter: c.DeadLetter) -> None:
        """Send a parked command again, then take it off the dead letters. The message id is new,
        so JetStream's duplicate window does not drop it; ingest's writes are idempotent."""
        headers = {"Nats-Msg-Id": f"{letter.request_id}:retry:{sequence}"}
        try:
            await self.js.publish(letter.subject, letter.payload.encode(), headers=headers, timeout=5.0)
        except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError) as exc:
            raise Unavailable(f"the command bus did not confirm the retry: {exc}") from exc
        await self.js.delete_msg(c.DEAD_LETTER_STREAM, sequence)

    async def publish_dead_letter(self, letter: c.DeadLetter) -> None:
        await self.js.publish(
            c.DEAD_LETTER_SUBJECT,
            letter.model_dump_json().encode(),
            headers={"Nats-Msg-Id": f"dlq:{letter.request_id}:{letter.command_sequence}"},
            timeout=5.0,
        )

    async def publish_result(self, result: c.CommandResult) -> None:
        # Core NATS: a waiting gateway hears it; nobody waiting is fine, the events are the record.
        await self.nc.publish(c.result_subject(result.request_id), result.model_dump_json().encode())

    @contextlib.asynccontextmanager
    async def result_waiter(self, request_id: str) -> AsyncIterator[asyncio.Future[c.CommandResult]]:
        """Subscribe to a request's result before publishing it, so the answer cannot be missed."""
        future: asyncio.Future[c.CommandResult] = asyncio.get_running_loop().create_future()

        async def on_result(msg: Msg) -> None:
            if not future.done():
                try:
                    future.set_result(c.CommandResult.model_validate_json(msg.data))
                except ValidationError as exc:
                    future.set_exception(exc)

        sub = await self.nc.subscribe(c.result_subject(request_id), cb=on_result)
        try:
            yield future
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def submit(
        self, command: c.AnyCommand, wait: float, max_backlog: int | None = None
    ) -> c.CommandResult | None:
        """Publish a command durably, then wait up to `wait` seconds for ingest to apply it.
        None: stored and not applied yet (it will be). A command ingest set aside raises.

        With `max_backlog`, a command is refused (`Busy`, retryable, nothing stored) while that many
        commands already wait in the user's partition: backpressure instead of an unbounded queue."""
        if max_backlog is not None:
            waiting = await self.backlog(command.user_id)
            if waiting >= max_backlog:
                raise Busy(
                    f"OpenMemory is catching up ({waiting} writes waiting); nothing was stored: "
                    f"retry in {Busy.retry_after_seconds} seconds"
                )
        async with self.result_waiter(command.request_id) as result:
            await self.publish_command(command)
            try:
                done = await asyncio.wait_for(asyncio.shield(result), wait)
            except TimeoutError:
                return None
        if not done.ok:
            raise OpenMemoryError(
                f"the request {command.request_id} could not be applied and was set aside: {done.error}"
            )
        return done

    # ---- queries -------------------------------------------------------------------------------

    async def query(self, query: c.Query, request: BaseModel, response: type[M], wait: float) -> M:
        """A read answered by the search service within `wait` seconds. When half of `wait` passes
        without an answer it is asked a second time, and whichever answer comes first is taken; when
        no one serves it, it is asked once more after a short pause (`kv.asked_again`). When a NATS
        node dies, a request or reply passing through it is lost, and a search worker that was
        connected to it subscribes again through another node a moment later: one lost message no
        longer fails the client's call, and a slow answer to the first request still counts. A query
        changes nothing, so asking twice is harmless (a search slower than half its wait runs
        twice)."""
        with tracer.start_as_current_span(f"query {query.value}", kind=SpanKind.CLIENT):
            ask = functools.partial(
                self._ask, query.subject, request, nobody="the search service is not running",
                who="the search service", headers=inject({}), waited=wait,
            )  # fmt: skip
            result = await asked_again(
                lambda limit: ask(wait=limit), wait, wait / 2, _query_lost, attempts=2,
                pause=min(RESUBSCRIBE_SECONDS, wait / 4),
            )  # fmt: skip
        return response.model_validate(result)

    async def consolidate(self, request: c.ConsolidateRequest, wait: float) -> c.ConsolidationReport:
        """Ask ingest to consolidate a user (`om.consolidate`), as `openmemory consolidate` and
        `POST /api/v1/consolidate` do; an error reply is raised as its error."""
        nobody = "no ingest is running on this system: start it, then consolidate"
        result = await self._ask(c.CONSOLIDATE_SUBJECT, request, wait, nobody, "ingest")
        return c.ConsolidationReport.model_validate(result)

    async def _ask(
        self,
        subject: str,
        request: BaseModel,
        wait: float,
        nobody: str,
        who: str,
        headers: dict[str, str] | None = None,
        waited: float | None = None,
    ) -> dict[str, Any]:
        """One request/reply: the reply's result, or its error raised; `nobody` when no one serves
        the subject, and a timeout named after `who` (and `waited`, the caller's whole wait)."""
        try:
            msg = await self.nc.request(
                subject, request.model_dump_json().encode(), timeout=wait, headers=headers
            )
        except nats.errors.NoRespondersError as exc:
            raise Unavailable(nobody) from exc
        except nats.errors.TimeoutError as exc:
            raise Unavailable(f"{who} did not answer within {waited or wait:.0f}s") from exc
        reply = c.Reply.model_validate_json(msg.data)
        if not reply.ok:
            raise error_from_code(reply.error_code or "internal", reply.error or "unknown error")
        return reply.result or {}

    async def serve_query(self, query: c.Query, handler: QueryHandler, concurrency: int = 16) -> Subscription:
        """Answer one query kind in the search queue group; every error becomes an error reply."""
        limit = asyncio.Semaphore(concurrency)

        async def answer(msg: Msg) -> None:
            async with limit:
                started = time.perf_counter()
                parent = extracted(msg.headers)
                with tracer.start_as_current_span(f"search.{query.value}", parent, SpanKind.SERVER):
                    reply = await _reply(handler, msg.data, query)
                QUERY_DURATION.labels(query.value).observe(time.perf_counter() - started)
                with contextlib.suppress(nats.errors.Error):
                    await msg.respond(reply.model_dump_json().encode())

        async def dispatch(msg: Msg) -> None:
            task = asyncio.create_task(answer(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        sub = await self.nc.subscribe(query.subject, queue=c.SEARCH_QUEUE_GROUP, cb=dispatch)
        self._subscriptions.append(sub)
        return sub

    async def close(self) -> None:
        for sub in self._subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        # In-flight replies were awaited above; flush what is buffered, then close. (A drain would
        # also wait on the pull subscriptions' inboxes, which never empty.)
        with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
            await self.nc.flush(timeout=2)
        # OSError: a server that went away first (the socket is reset as the client flushes it).
        with contextlib.suppress(nats.errors.Error, OSError):
            await self.nc.close()


async def _reply(handler: QueryHandler, data: bytes, query: c.Query) -> c.Reply:
    """Run a query handler; every error becomes an error reply with its code."""
    try:
        result = await handler(_json(data))
        return c.Reply(ok=True, result=result.model_dump(mode="json"))
    except ValidationError as exc:
        return c.Reply(ok=False, error_code=InvalidInput.code, error=_validation_message(exc))
    except OpenMemoryError as exc:
        return c.Reply(ok=False, error_code=exc.code, error=exc.message)
    except Exception as exc:
        log.exception("query %s failed", query.value)
        return c.Reply(ok=False, error_code="internal", error=f"search failed: {exc}")


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise InvalidInput("the query is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidInput("the query must be a JSON object")
    return value


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def redacted(url: str) -> str:
    """A server URL (or a comma-separated list of them) fit for messages and logs: each password
    replaced by `***`."""
    if "," in url:
        return ",".join(redacted(u.strip()) for u in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _refused(exc: Exception) -> bool:
    """The server turned the credentials down (nats-py reports it as a plain `Error` at connect)."""
    return isinstance(exc, nats.errors.AuthorizationError) or "authorization violation" in str(exc).lower()


def _query_lost(error: BaseException) -> bool:
    """An attempt that got no answer, or found no one serving the subject."""
    return isinstance(error, Unavailable) and isinstance(
        error.__cause__, (nats.errors.TimeoutError, nats.errors.NoRespondersError)
    )
