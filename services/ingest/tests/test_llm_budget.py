"""LLM token accounting and daily budgets: a recorded LLM driven past a per-user and a global budget,
over a real nats-server's KV bucket, through the ingest worker (the result a client gets)."""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client import REGISTRY

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.kv import open_bucket
from openmemory_core.llm_usage import LLMUsage, all_key, user_key
from openmemory_core.settings import IngestSettings, LLMSettings
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_ingest.extraction.llm import LLMExtractor, prompt
from openmemory_ingest.service import IngestService
from openmemory_ingest.worker import IngestWorker
from openmemory_testing import RecordedOpenAITestServer, RecordedReply, recorded, unique

#: What each recorded call reports it used: 100 tokens.
USAGE = {"prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
async def no_stale_commands(bus: Bus) -> None:
    """Other tests publish commands on the session's bus that no worker of theirs applies (the bus's
    own tests, the write guard's). The worker started here would send them to the recorded LLM and
    count their tokens: start from an empty commands stream."""
    await bus.js.purge_stream(c.COMMANDS_STREAM)


async def add(bus: Bus, user: str, text: str) -> c.CommandResult:
    command = c.AddCommand(user_id=user, app="a", text=text)
    async with bus.result_waiter(command.request_id) as result:
        await bus.publish_command(command)
        return await asyncio.wait_for(result, 30)


def llm_service(
    server: RecordedOpenAITestServer,
    parts: tuple[QdrantVectorStore, GraphStore, MiniLMEmbedder],
    usage: LLMUsage,
    **settings: object,
) -> IngestService:
    vectors, graph, embedder = parts
    llm = LLMSettings.model_validate(
        {"extractor": "llm", "base_url": server.base_url, "timeout_seconds": 2, **settings}
    )
    service = IngestService(vectors, graph, embedder, LLMExtractor(llm))
    service.llm_usage = usage
    return service


async def test_a_user_past_the_daily_budget_gets_local_extraction_and_others_do_not(
    bus: Bus, vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> None:
    model, first, second = unique("model"), unique("u"), unique("u")
    usage = LLMUsage(await bus.llm_usage_bucket())  # the bucket every ingest replica counts in
    replies = [RecordedReply(recorded("extract_fenced.md"), usage=USAGE)]
    async with RecordedOpenAITestServer(replies) as server:
        service = llm_service(
            server, (vectors, graph, embedder), usage, model=model, daily_tokens_per_user=100,
            price_prompt_per_million=2.0, price_completion_per_million=10.0,
        )  # fmt: skip
        worker = IngestWorker(bus, service, IngestSettings(max_deliver=3, retry_backoff_seconds=0.1))
        await worker.start()
        try:
            through_llm = await add(bus, first, "I'm vegetarian")
            assert len(server.requests) == 1  # one call (nothing stored yet to decide against)
            fallback = await add(bus, first, "I live in Lisbon.")
            assert len(server.requests) == 1  # the budget was checked first: no call
            other = await add(bus, second, "I'm vegetarian")
            assert len(server.requests) == 2
        finally:
            await worker.stop()

    assert through_llm.ok and through_llm.note is None
    assert [r.memory for r in through_llm.results] == ["User is vegetarian"]
    # nothing dropped: the local rules extracted it, and the result says why
    assert fallback.ok and [r.memory for r in fallback.results] == ["User lives in Lisbon."]
    assert fallback.note is not None and "daily LLM budget (100 tokens) is spent" in fallback.note
    assert other.ok and other.note is None and [r.memory for r in other.results] == ["User is vegetarian"]

    assert await usage.today(first) == 100 and await usage.today(second) == 100
    day = usage.day()
    assert (await usage.kv.get(user_key(first, day))).value == b"100"
    assert sample("openmemory_llm_tokens_total", model=model, kind="prompt") == 120
    assert sample("openmemory_llm_tokens_total", model=model, kind="completion") == 80
    assert sample("openmemory_llm_cost_usd_total", model=model) == pytest.approx(2 * (60 * 2 + 40 * 10) / 1e6)
    assert sample("openmemory_llm_usage_estimated_total", model=model) == 0


async def test_the_global_budget_stops_every_user_once_spent(
    bus: Bus, vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> None:
    # A bucket of this test alone: `llm.all.<day>` is shared by every user of a bucket.
    usage = LLMUsage(await open_bucket(bus.js, unique("llm_usage"), history=1, ttl=3600.0))
    first, second = unique("u"), unique("u")
    replies = [RecordedReply(recorded("extract_fenced.md"), usage=USAGE)]
    async with RecordedOpenAITestServer(replies) as server:
        service = llm_service(server, (vectors, graph, embedder), usage, daily_tokens_total=150)
        worker = IngestWorker(bus, service, IngestSettings(max_deliver=3, retry_backoff_seconds=0.1))
        await worker.start()
        try:
            one = await add(bus, first, "I'm vegetarian")
            two = await add(bus, second, "I'm vegetarian")  # 100 < 150: still allowed, now 200
            three = await add(bus, unique("u"), "I live in Lisbon.")
        finally:
            await worker.stop()
        assert len(server.requests) == 2

    assert one.note is None and two.note is None
    assert three.ok and [r.memory for r in three.results] == ["User lives in Lisbon."]
    assert three.note is not None and "server's daily LLM budget (150 tokens) is spent" in three.note
    assert await usage.today(None) == 200
    assert (await usage.kv.get(all_key(usage.day()))).value == b"200"


async def test_without_usage_in_the_answer_tokens_are_estimated_from_characters(
    bus: Bus, vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> None:
    model, user = unique("model"), unique("u")
    usage = LLMUsage(await bus.llm_usage_bucket())
    answer = recorded("extract_fenced.md")
    async with RecordedOpenAITestServer([RecordedReply(answer, usage=None)]) as server:
        service = llm_service(server, (vectors, graph, embedder), usage, model=model)
        applied = await service.apply(c.AddCommand(user_id=user, app="a", text="I'm vegetarian"))
        sent = server.requests[0]["messages"]
    assert [s.memory for s in applied.summary] == ["User is vegetarian"]
    prompt_chars = len(sent[0]["content"]) + len(sent[1]["content"])
    assert sent[0]["content"].startswith(prompt("extract_facts")[:40])
    assert sample("openmemory_llm_tokens_total", model=model, kind="prompt") == math.ceil(prompt_chars / 4)
    assert sample("openmemory_llm_tokens_total", model=model, kind="completion") == math.ceil(len(answer) / 4)
    assert sample("openmemory_llm_usage_estimated_total", model=model) == 1
    assert sample("openmemory_llm_cost_usd_total", model=model) == 0  # no price: no cost counted
    assert await usage.today(user) == math.ceil(prompt_chars / 4) + math.ceil(len(answer) / 4)
