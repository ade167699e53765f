"""NATS KV buckets: opening them, and listing their keys without a consumer.

nats-py's `KeyValue.keys()` opens a watcher (a JetStream consumer) per call; under steady use they
pile up until the server refuses new consumers. A bucket is a stream (`KV_<bucket>`, one subject per
key, `$KV.<bucket>.<key>`: the KV specification), so the stream's own per-subject counts
(`stream_info` with a subject filter, public API) list the same keys and open nothing. `Bucket` is a
`KeyValue` that keeps its JetStream context and stream as public attributes for that.
"""

from __future__ import annotations

import contextlib

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from openmemory_core.errors import Unavailable


class Bucket(KeyValue):
    """A KV bucket: nats-py's `KeyValue`, plus what listing its keys needs."""

    def __init__(self, name: str, js: JetStreamContext, direct: bool) -> None:
        self.bucket = name
        self.jetstream = js
        self.stream_name = f"KV_{name}"
        self.subject_prefix = f"$KV.{name}."
        super().__init__(name=name, stream=self.stream_name, pre=self.subject_prefix, js=js, direct=direct)


async def open_bucket(js: JetStreamContext, name: str, history: int = 5, ttl: float | None = None) -> Bucket:
    """The bucket `name`, made (on file) if it does not exist yet."""
    try:
        info = await js.stream_info(f"KV_{name}")
    except nats.js.errors.NotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):  # a sibling made it meanwhile
            await js.create_key_value(
                KeyValueConfig(bucket=name, history=history, ttl=ttl, storage=StorageType.FILE)
            )
        info = await js.stream_info(f"KV_{name}")
    return Bucket(name, js, bool(info.config.allow_direct))


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
        raise Unavailable(
            f"the bus (NATS) is not reachable just now; retry shortly ({type(exc).__name__})"
        ) from exc
    return entry.value or None, entry.revision
