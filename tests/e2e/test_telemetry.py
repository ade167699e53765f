"""Metrics, traces and logs: one trace spans the services of an add; /metrics and JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from e2e_support import mcp_client, new_key
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from openmemory_core import contracts as c
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.servers import embedded_nats, start_embedded
from openmemory_core.settings import GatewaySettings
from openmemory_core.stores import open_graph_store
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_core.telemetry import JsonFormatter, request_id_var, tracer
from openmemory_gateway.service import MemoryGateway
from openmemory_testing import RunningSystem, unique
from openmemory_testing.stack import running_services


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process; nothing else in the tests sets one
    return exporter


@pytest_asyncio.fixture
async def services(
    tmp_path: Path, graph_url: str, embedder: MiniLMEmbedder, spans: InMemorySpanExporter
) -> AsyncIterator[MemoryGateway]:
    """Gateway, ingest and search logic wired over a real NATS of their own, in this process."""
    nats_proc, url = await start_embedded(embedded_nats, tmp_path / "nats")
    vectors = QdrantVectorStore.open(embedder.model_tag, embedder.dimension, None, tmp_path / "q")
    await vectors.ensure_collection()
    graph = open_graph_store(graph_url)
    try:
        async with running_services(url, vectors, graph, embedder, 2) as client:
            yield MemoryGateway(client, GatewaySettings(add_wait_seconds=20), await client.apps_bucket())
    finally:
        await vectors.close()
        await graph.close()
        await nats_proc.stop()


def by_trace(spans: InMemorySpanExporter, trace_id: int) -> set[str]:
    finished: tuple[ReadableSpan, ...] = spans.get_finished_spans()
    return {s.name for s in finished if s.context is not None and s.context.trace_id == trace_id}


async def test_one_trace_spans_gateway_bus_ingest_and_stores(
    services: MemoryGateway, spans: InMemorySpanExporter
) -> None:
    principal = c.Principal(user_id=unique(), app="test", key_id="k")
    with tracer.start_as_current_span("client add") as root:
        done = await services.add(principal, "User's cousin Lea lives in Lyon.", infer=True)
    assert isinstance(done, c.CommandResult) and done.ok
    names = by_trace(spans, root.get_span_context().trace_id)
    assert {"client add", "publish add", "ingest.apply add", "ingest.extract", "ingest.embed"} <= names
    assert {"ingest.write_vectors", "qdrant.upsert", "ingest.write_graph", "falkordb.add_memory"} <= names
    assert "ingest.publish_events" in names

    with tracer.start_as_current_span("client search") as root:
        found = await services.search(principal, "where does Lea live?", 5)
    assert found.hits[0].memory.text == "User's cousin Lea lives in Lyon."
    names = by_trace(spans, root.get_span_context().trace_id)
    assert {"query search", "search.search", "qdrant.dense_search", "qdrant.keyword_search"} <= names
    assert {"search.embed", "search.lists", "search.more_lists", "search.rank"} <= names


def test_json_log_lines_carry_trace_and_request_ids(spans: InMemorySpanExporter) -> None:
    record = logging.LogRecord("openmemory", logging.INFO, __file__, 1, "applied %s", ("add",), None)
    token = request_id_var.set("req-1")
    try:
        with tracer.start_as_current_span("work") as span:
            line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "applied add" and line["level"] == "info" and line["request_id"] == "req-1"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


async def test_metrics_cover_tools_ingest_stores_and_memories(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique())
    async with mcp_client(all_in_one.mcp_url, key) as client:
        await client.call("add_memories", text="I collect vinyl records.")
        await client.call("search_memory", query="hobbies")
    text = ""
    for _ in range(100):  # the gauges refresh on their own interval: wait for the settled state
        text = httpx.get(f"{all_in_one.gateway_url}/metrics").text
        settled = "openmemory_ingest_pending_commands 0.0" in text
        if settled and 'openmemory_memories{state="active"} 0.0' not in text:
            break
        await asyncio.sleep(0.1)
    assert 'openmemory_mcp_tool_calls_total{outcome="ok",tool="add_memories"}' in text
    assert 'openmemory_mcp_tool_duration_seconds_count{tool="search_memory"}' in text
    for stage in ("extract", "embed", "write_vectors", "write_graph", "publish_events"):
        assert f'openmemory_ingest_stage_duration_seconds_count{{stage="{stage}"}}' in text
    assert 'openmemory_store_operation_duration_seconds_count{operation="upsert",store="qdrant_edge"}' in text
    assert 'openmemory_search_query_duration_seconds_count{query="search"}' in text
    for stage in ("embed", "lists", "more_lists", "rank"):
        assert f'openmemory_search_stage_seconds_count{{stage="{stage}"}}' in text
    assert 'openmemory_ingest_commands_total{kind="add",outcome="applied"}' in text
    # ingest embedded through its lane: at least the add's one text in one call
    calls = [ln for ln in text.splitlines() if ln.startswith("openmemory_embedding_batch_texts_count")]
    assert calls and float(calls[0].split()[-1]) >= 1
    assert "openmemory_ingest_pending_commands 0.0" in text and "openmemory_dead_letters" in text
    active = [ln for ln in text.splitlines() if ln.startswith('openmemory_memories{state="active"}')]
    assert active and float(active[0].split()[-1]) >= 1
    # One registry per process: the dashboard's port serves the same figures.
    assert "openmemory_mcp_tool_calls_total" in httpx.get(f"{all_in_one.admin_url}/metrics").text


def test_logs_are_json_lines_with_request_ids(all_in_one: RunningSystem) -> None:
    lines = [json.loads(ln) for ln in all_in_one.log().splitlines() if ln.startswith("{")]
    applied = [ln for ln in lines if ln["message"].startswith("applied add")]
    assert applied and all(len(ln["request_id"]) == 32 for ln in applied)
