"""NATS KV buckets: opening them, and listing their keys without a consumer.

nats-py's `KeyValue.keys()` opens a watcher (a JetStream consumer) per call; under steady use they
pile up until the server refuses new consumers. A bucket is a stream (`KV_<bucket>`, one subject per
key, `$KV.<bucket>.<key>`: the KV specification), so the stream's own per-subject counts
(`stream_info` with a subject filter, public API) list the same keys and open nothing. `Bucket` is a
`KeyValue` that keeps its JetStream context and stream as public attributes for that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig, StreamInfo
from nats.js.kv import KeyValue

from openmemory_core.errors import Unavailable

log = logging.getLogger(__name__)

#: What the client raises while NATS cannot take a request: no stream leader during an election, a
#: connection being re-made, no answer in time. The same request may succeed once the bus is back, so
#: ingest waits for it as for a store that is down, instead of setting the command aside, and a
#: client is told to retry.
BUS_DOWN: tuple[type[Exception], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


def unreachable(exc: BaseException, note: str = "") -> Unavailable:
    """What a caller gets while NATS does not answer: retryable (503), naming the client's error."""
    return Unavailable(
        f"the bus (NATS) is not reachable just now; {note}retry shortly ({type(exc).__name__})"
    )


#: A KV read is asked again after this long without an answer, and waits this long in all, for at
#: most three attempts (`Bucket.get`).
READ_AGAIN_SECONDS, READ_SECONDS = 2.0, 6.0
T = TypeVar("T")


async def asked_again(
    ask: Callable[[float], Coroutine[Any, Any, T]],
    wait: float,
    again_after: float,
    lost: Callable[[BaseException], bool],
    attempts: int,
    pause: float = 0.1,
) -> T:
    """`ask(limit)`, a read that may be lost on its way (a NATS node dying under it), asked again
    when `again_after` seconds pass without an answer, or after `pause` when an attempt is `lost`,
    up to `attempts` in all and `wait` seconds (each attempt is given what is left of `wait` as its
    limit). The first answer of any attempt is taken, a slow one too (an error that is not a loss is
    an answer); when every attempt is lost, the last one's error. Only for what changes nothing when
    asked twice."""
    deadline = time.monotonic() + wait
    asking: set[asyncio.Task[T]] = set()
    failed: BaseException = nats.errors.TimeoutError()  # only if `wait` leaves no time to ask at all
    try:
        for attempt in range(1, attempts + 1):
            if deadline - time.monotonic() > pause:
                task = asyncio.create_task(ask(deadline - time.monotonic()))
                task.add_done_callback(_retrieved)  # one lost beside an answer is never read below
                asking.add(task)
            # The last attempt waits for every one still asking: each ends by its limit.
            again_at = time.monotonic() + again_after if attempt < attempts else None
            while asking and (again_at is None or time.monotonic() < again_at):
                done, asking = await asyncio.wait(
                    asking,
                    timeout=None if again_at is None else again_at - time.monotonic(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    error = task.exception()
                    if error is None or not lost(error):
                        return task.result()
                    failed = error
            if not asking:  # every attempt so far lost: a short pause, then the next one
                if attempt == attempts or deadline - time.monotonic() <= pause:
                    break
                await asyncio.sleep(pause)
        raise failed
    finally:
        for task in asking:
            task.cancel()


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Bucket(KeyValue):
    """A KV bucket: nats-py's `KeyValue`, plus what listing its keys needs, and reads that are asked
    again when a request gets no answer. Reads go to the stream's leader (never `allow_direct`,
    whatever the stream allows): a follower may not yet have a revoked key or a paused app."""

    def __init__(self, name: str, js: JetStreamContext) -> None:
        self.bucket = name
        self.jetstream = js
        self.stream_name = f"KV_{name}"
        self.subject_prefix = f"$KV.{name}."
        super().__init__(name=name, stream=self.stream_name, pre=self.subject_prefix, js=js, direct=False)

    async def get(self, key: str, revision: int | None = None, validate_keys: bool = True) -> KeyValue.Entry:
        """The key's entry. A read with no answer after `READ_AGAIN_SECONDS` is sent again, and the
        first answer taken, for up to `READ_SECONDS` in all: when a NATS node dies, a request on its
        way through it (or on the connection to it) is lost, while the same read sent a moment
        later gets through. nats-py alone would wait 5 s for the lost answer and fail every API-key
        check made meanwhile. While the stream elects a leader no attempt is answered, and the
        caller gets nats-py's timeout error as before."""
        read = super().get

        async def attempt(limit: float) -> KeyValue.Entry:
            try:
                return await asyncio.wait_for(read(key, revision, validate_keys), limit)
            except TimeoutError as exc:
                if isinstance(exc, nats.errors.TimeoutError):
                    raise
                raise nats.errors.TimeoutError from exc  # what callers know as the bus not answering

        return await asked_again(attempt, READ_SECONDS, READ_AGAIN_SECONDS, _read_lost, attempts=3)


def _read_lost(error: BaseException) -> bool:
    """No answer in time, or no JetStream to answer (nats-py's word for no responders to an API
    request)."""
    return isinstance(error, (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError))


async def open_bucket(
    js: JetStreamContext, name: str, history: int = 5, ttl: float | None = None, replicas: int = 1
) -> Bucket:
    """The bucket `name`, made (on file, with `replicas` copies) if it does not exist yet; an existing
    one is scaled to `replicas`."""
    try:
        info = await js.stream_info(f"KV_{name}")
    except nats.js.errors.NotFoundError:
        config = KeyValueConfig(
            bucket=name, history=history, ttl=ttl, storage=StorageType.FILE, replicas=replicas
        )
        info = await _made(js, config)
    await scale_stream(js, info.config, replicas)
    return Bucket(name, js)


#: How long a bucket being made may stay unknown to the server asked (`_made`).
MADE_WAIT_SECONDS = 10.0


async def _made(js: JetStreamContext, config: KeyValueConfig) -> StreamInfo:
    """Make the bucket `config` names and return its stream's info. In a cluster the meta leader
    makes it, and the server asked may learn of it a moment later; a create refused as a bad
    request is a sibling's create that came first, or a cluster that cannot place it yet (just
    started, its meta leader not yet knowing what each peer supports). So the create is sent again
    while the stream stays unknown (making a bucket that exists with the same config is a no-op),
    50 ms apart doubling to a second, for at most `MADE_WAIT_SECONDS`; then the last refusal is
    raised, naming the setting."""
    stream = f"KV_{config.bucket}"
    pause, waited = 0.05, 0.0
    refused: nats.js.errors.APIError | None = None
    while True:
        try:
            await js.create_key_value(config)
        except nats.js.errors.BadRequestError as exc:
            refused = exc
        except nats.js.errors.APIError as exc:
            raise replicas_refused(stream, config.replicas, exc) from exc
        try:
            return await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            if waited >= MADE_WAIT_SECONDS:
                if refused is not None:
                    raise replicas_refused(stream, config.replicas, refused) from refused
                raise
        await asyncio.sleep(pause)
        waited += pause
        pause = min(pause * 2, 1.0)


async def scale_stream(js: JetStreamContext, config: StreamConfig, replicas: int) -> None:
    """Give an existing stream (or bucket) `replicas` copies: the upgrade from one NATS server to a
    cluster. JetStream copies the data to the new peers itself; its durable consumers follow (they
    inherit the stream's replica count). Only the count changes: the rest of the config stays as
    the stream has it."""
    if (config.num_replicas or 1) == replicas:
        return
    log.warning(
        "scaling the NATS stream %s from %s to %s replicas", config.name, config.num_replicas, replicas
    )
    try:
        await js.update_stream(dataclasses.replace(config, num_replicas=replicas))
    except nats.js.errors.APIError as exc:  # e.g. more replicas than servers
        raise replicas_refused(config.name, replicas, exc) from exc


def replicas_refused(name: str | None, replicas: int, exc: nats.js.errors.APIError) -> Unavailable:
    """The error for a stream NATS would not give `replicas` copies, naming the setting to change."""
    return Unavailable(
        f"NATS refused {replicas} replicas for the stream {name} ({exc.description}); "
        "OPENMEMORY_NATS_REPLICAS must not exceed the servers of the NATS cluster (1 without one)"
    )


async def kv_keys(kv: Bucket, prefix: str = "") -> list[str]:
    """The keys of `kv` that start with `prefix` (deleted ones included: `get` says which)."""
    pre = kv.subject_prefix
    info = await kv.jetstream.stream_info(
        kv.stream_name, subjects_filter=f"{pre}{prefix}>" if prefix else f"{pre}>"
    )
    names = [subject.removeprefix(pre) for subject in (info.state.subjects or {})]
    return sorted(n for n in names if n.startswith(prefix))


async def kv_entries(kv: Bucket, prefix: str = "") -> list[tuple[str, bytes]]:
    """The current (key, value) pairs of `kv` whose keys start with `prefix`; deleted keys left out."""
    entries = []
    for name in await kv_keys(kv, prefix):
        value, _ = await kv_value(kv, name)
        if value is not None:
            entries.append((name, value))
    return entries


async def kv_value(kv: KeyValue, key: str) -> tuple[bytes | None, int | None]:
    """One key's value and revision; (None, None) when it is absent. While NATS cannot be reached
    the caller gets `Unavailable` (503, retryable), not a crash."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None, None
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
        raise unreachable(exc) from exc
    return entry.value or None, entry.revision
