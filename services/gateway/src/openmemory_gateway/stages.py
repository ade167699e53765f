"""Where a call's time goes in the gateway: one histogram, `openmemory_gateway_stage_seconds{stage}`,
and a span per stage when tracing is on.

Stages: `request` (a streamable HTTP request to the MCP endpoint, from arrival to its answer's last
byte), inside it `auth` (the key), `rate_limit`, then the tool's work (`tool`: `app_check`, the
app's standing; `<query>_request`, the NATS request to search, e.g. `search_request`; `access_log`,
the read handed to the access log) and `answer` (a search's answer built and capped). What `request`
holds beyond `auth`, `rate_limit`, `tool` and `answer` is the MCP layer (JSON-RPC parsing, argument
validation, the answer's serialisation). `openmemory bench scale` prints this breakdown.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Histogram

from openmemory_core.telemetry import FINE_LATENCY, timed_stage

GATEWAY_STAGE = Histogram(
    "openmemory_gateway_stage_seconds",
    "Time per gateway stage of an MCP call (request, auth, rate_limit, tool, app_check, "
    "<query>_request, answer, access_log)",
    ["stage"],
    buckets=FINE_LATENCY,
)


def timed(stage: str) -> contextlib.AbstractContextManager[None]:
    """Time one stage into the histogram, in a span of its own when tracing is on."""
    return timed_stage(GATEWAY_STAGE, "gateway", stage)
