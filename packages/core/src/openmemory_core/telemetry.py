"""Metrics, traces and logs, the same in every service.

- Prometheus metrics on the default registry; every HTTP app of a process serves `/metrics`, so
  `--target all` has one endpoint for all components.
- OpenTelemetry traces, off unless the standard `OTEL_*` variables ask for an exporter; the trace
  context crosses NATS in message headers (W3C `traceparent`).
- Logs as JSON lines carrying the trace, span and request ids (or as text on a terminal).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

tracer = trace.get_tracer("openmemory")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Finer, for the stages of one call: most take well under a millisecond.
FINE_LATENCY = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01,
    0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

MCP_CALLS = Counter(
    "openmemory_mcp_tool_calls_total", "MCP tool calls by tool and outcome", ["tool", "outcome"]
)
MCP_DURATION = Histogram(
    "openmemory_mcp_tool_duration_seconds", "MCP tool call latency", ["tool"], buckets=_LATENCY
)
AUTH_FAILURES = Counter("openmemory_auth_failures_total", "Refused MCP requests by HTTP status", ["status"])
RATE_LIMITED = Counter(
    "openmemory_rate_limited_total", "Requests refused by the per-key rate limit (HTTP 429)", ["service"]
)
INGEST_PENDING = Gauge(
    "openmemory_ingest_pending_commands", "Commands stored but not yet applied (ingest lag)"
)
INGEST_COMMANDS = Counter(
    "openmemory_ingest_commands_total", "Commands by kind and outcome (applied, retried, dead_lettered)",
    ["kind", "outcome"],
)  # fmt: skip
INGEST_STAGE = Histogram(
    "openmemory_ingest_stage_duration_seconds", "Time per ingest stage", ["stage"], buckets=_LATENCY
)
#: Texts per call of ingest's embedding lane (`embeddings.EmbeddingLane`): the adds that arrive
#: while the model is busy share its next call.
EMBED_BATCH = Histogram(
    "openmemory_embedding_batch_texts", "Texts per embedding call of ingest's lane",
    buckets=(1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64, 128),
)  # fmt: skip
DEAD_LETTERS = Gauge("openmemory_dead_letters", "Commands set aside in the dead-letter stream")
STORE_DURATION = Histogram(
    "openmemory_store_operation_duration_seconds",
    "Store call latency",
    ["store", "operation"],
    buckets=_LATENCY,
)
STORE_ERRORS = Counter("openmemory_store_errors_total", "Failed store calls", ["store", "operation"])
MEMORIES = Gauge("openmemory_memories", "Memories by state", ["state"])
#: Where a search's time goes in the search service (`openmemory bench scale` prints it).
SEARCH_STAGE = Histogram(
    "openmemory_search_stage_seconds",
    "Time per stage of a search in the search service (embed: the question's vector; lists: the dense, "
    "keyword and graph lists; more_lists: periods, parts and a named event, with their embedding; "
    "rank: fusion, the reads it needs, the order)",
    ["stage"],
    buckets=FINE_LATENCY,
)
QUERY_DURATION = Histogram(
    "openmemory_search_query_duration_seconds", "Search service latency by query kind", ["query"],
    buckets=_LATENCY,
)  # fmt: skip
LLM_TOKENS = Counter(
    "openmemory_llm_tokens_total", "LLM tokens by model and kind (prompt, completion)", ["model", "kind"]
)
#: Calls whose answer carried no `usage`: their tokens were estimated (characters / 4).
LLM_TOKENS_ESTIMATED = Counter(
    "openmemory_llm_usage_estimated_total", "LLM calls whose tokens were estimated, not reported", ["model"]
)
LLM_COST = Counter(
    "openmemory_llm_cost_usd_total", "Estimated LLM cost in US dollars (only with a price set)", ["model"]
)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def traced() -> bool:
    """Whether spans are recorded: a tracer provider is installed (`setup_tracing`, or a test's). Without
    one a span is a no-op that still costs entering and leaving it, a dozen times per add; the
    store and stage spans are then left out (a message's own span still carries its trace on)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@contextlib.asynccontextmanager
async def store_call(store: str, operation: str) -> AsyncIterator[None]:
    """Time a store call, count its failure, and trace it."""
    started = time.perf_counter()
    span = (
        tracer.start_as_current_span(f"{store}.{operation}", kind=trace.SpanKind.CLIENT)
        if traced()
        else contextlib.nullcontext()
    )
    with span as current:
        if current is not None:
            current.set_attribute("db.system", store)
        try:
            yield
        except Exception:
            STORE_ERRORS.labels(store, operation).inc()
            raise
        finally:
            STORE_DURATION.labels(store, operation).observe(time.perf_counter() - started)


@contextlib.contextmanager
def timed_stage(histogram: Histogram, service: str, name: str) -> Iterator[None]:
    """Time one stage into `histogram`, in a span `<service>.<name>` when tracing is on."""
    started = time.perf_counter()
    with tracer.start_as_current_span(f"{service}.{name}") if traced() else contextlib.nullcontext():
        try:
            yield
        finally:
            histogram.labels(name).observe(time.perf_counter() - started)


def search_stage(name: str) -> contextlib.AbstractContextManager[None]:
    """Time and trace one stage of a search (`SEARCH_STAGE`)."""
    return timed_stage(SEARCH_STAGE, "search", name)


@contextlib.asynccontextmanager
async def stage(name: str) -> AsyncIterator[None]:
    """Time and trace one ingest stage (extract, embed, write_vectors, write_graph, publish_events)."""
    with timed_stage(INGEST_STAGE, "ingest", name):
        yield


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to outgoing NATS headers."""
    propagate.inject(headers)
    return headers


def extracted(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context a NATS message carries (an empty context when it carries none)."""
    return propagate.extract(dict(headers or {}))


def tracing_requested() -> bool:
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return exporter == "otlp" or bool(endpoint)


def configure_tracing(service_name: str) -> bool:
    """Export traces over OTLP/HTTP when the standard OTEL_* variables ask for it; off otherwise."""
    if not tracing_requested():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with trace, span and request ids when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
            entry["span_id"] = f"{span.span_id:016x}"
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str = "auto") -> None:
    """`json`, `text`, or `auto` (text on a terminal, JSON otherwise)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
