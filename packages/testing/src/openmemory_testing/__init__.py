"""Test support for every suite of the workspace (development only: no service depends on it).

- `plugin`: the pytest plugin (`-p openmemory_testing.plugin`): real `nats-server` and FalkorDB
  processes, the embedding model, stores; Neo4j and a Qdrant server where Docker runs.
- `harness`: `openmemory run` as a child process (`start_system`), for end-to-end tests and
  `openmemory bench load`.
- `servers`: the recorded-response OpenAI test server and the OAuth introspection test server.
- `stack`: ingest and search wired over a real NATS in one process (bench and the trace tests).
- here: small helpers every suite uses.

Nothing here imports pytest but `plugin`, which pytest loads itself.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from openmemory_testing.harness import RunningSystem, openmemory_command, start_system, stop_all
from openmemory_testing.servers import (
    OAuthIntrospectionTestServer,
    RecordedOpenAITestServer,
    RecordedReply,
    recorded,
)

__all__ = [
    "OAuthIntrospectionTestServer",
    "RecordedOpenAITestServer",
    "RecordedReply",
    "RunningSystem",
    "at",
    "cpu_seconds",
    "eventually",
    "openmemory_command",
    "recorded",
    "start_system",
    "stop_all",
    "unique",
]


def unique(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def eventually(check: object, timeout: float = 10.0, interval: float = 0.1) -> object:
    """Await `check()` until it returns something truthy, or fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()  # type: ignore[operator]
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def at(minutes: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)


def cpu_seconds(work: Callable[[], object], runs: int = 3) -> float:
    """The least CPU time of this process over `runs` calls of `work`: for bounds on hostile input,
    which a busy machine taking the core away must not break (wall-clock time counts that)."""
    spent = []
    for _ in range(runs):
        started = time.process_time()
        work()
        spent.append(time.process_time() - started)
    return min(spent)
