"""Listing the keys of a NATS KV bucket without a consumer.

nats-py's `KeyValue.keys()` opens a watcher (a JetStream consumer) per call and leaves it to expire;
under steady use they pile up until the server refuses new consumers. The stream's own per-subject
counts (`stream_info` with a subject filter) list the same keys and open nothing.
"""

from __future__ import annotations

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from openmemory_core.errors import Unavailable


async def kv_keys(kv: KeyValue, prefix: str = "") -> list[str]:
    """The keys of `kv` that start with `prefix` (deleted ones included: `get` says which)."""
    pre: str = kv._pre  # "$KV.<bucket>."
    info = await kv._js.stream_info(kv._stream, subjects_filter=f"{pre}{prefix}>" if prefix else f"{pre}>")
    names = [subject.removeprefix(pre) for subject in (info.state.subjects or {})]
    return sorted(n for n in names if n.startswith(prefix))


async def kv_entries(kv: KeyValue, prefix: str = "") -> list[tuple[str, bytes]]:
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
