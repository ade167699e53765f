"""Where a call's time goes in the gateway: one histogram, `openmemory_gateway_stage_seconds{stage}`,
and a span per stage.

Stages: `request` (a streamable HTTP request to the MCP endpoint, from arrival to its answer's last
byte), inside it `auth` (the key), `rate_limit`, then the tool's work (`tool`: `app_check`, the
app's standing; `<query>_request`, the NATS request to search, e.g. `search_request`; `access_log`,
the read handed to the access log) and `answer` (a search's answer built and capped). What `request`
holds beyond `auth`, `rate_limit`, `tool` and `answer` is the MCP layer (JSON-RPC parsing, argument
validation, the answer's serialisation). `openmemory bench scale` prints this breakdown.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import Histogram

from openmemory_core.telemetry import FINE_LATENCY, tracer

GATEWAY_STAGE = Histogram(
    "openmemory_gateway_stage_seconds",
    "Time per gateway stage of an MCP call (request, auth, rate_limit, tool, app_check, "
    "<query>_request, answer, access_log)",
    ["stage"],
    buckets=FINE_LATENCY,
)


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    """Time one stage into the histogram, in a span of its own."""
    started = time.perf_counter()
    with tracer.start_as_current_span(f"gateway.{stage}"):
        try:
            yield
        finally:
            GATEWAY_STAGE.labels(stage).observe(time.perf_counter() - started)
