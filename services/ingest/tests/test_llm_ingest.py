"""Ingest on the LLM path, against the recorded-response OpenAI test server."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.settings import IngestSettings, LLMSettings
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.extraction.llm import LLMExtractor
from openmemory_ingest.service import IngestService
from openmemory_ingest.worker import IngestWorker
from openmemory_testing import RecordedOpenAITestServer, RecordedReply, recorded, unique


def llm_service(
    server: RecordedOpenAITestServer, vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> IngestService:
    settings = LLMSettings(extractor="llm", base_url=server.base_url, timeout_seconds=2)
    return IngestService(vectors, graph, embedder, LLMExtractor(settings))


async def test_the_model_updates_a_stored_memory_in_place(
    vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> None:
    user = unique()
    local = IngestService(vectors, graph, embedder, LocalExtractor())
    (lisbon,) = (
        await local.apply(c.AddCommand(user_id=user, app="cursor", text="I live in Lisbon."))
    ).summary
    replies = [
        RecordedReply(recorded("extract_lisbon_update.json")),
        RecordedReply(recorded("decide_update_first.json")),
    ]
    async with RecordedOpenAITestServer(replies) as server:
        applied = await llm_service(server, vectors, graph, embedder).apply(
            c.AddCommand(user_id=user, app="claude", text="I live in the Alfama district of Lisbon")
        )
    assert [(s.event, s.id) for s in applied.summary] == [(c.ChangeKind.UPDATE, lisbon.id)]
    (event,) = applied.events
    assert event.before is not None and event.before.text == "User lives in Lisbon."
    assert event.after is not None and event.after.text == "User lives in Lisbon, in the Alfama district"
    (memory,) = await vectors.list_memories(user, 10)
    assert memory.id == lisbon.id and memory.app == "cursor" and "Alfama" in memory.entities
    found = await vectors.dense_search(user, (await embedder.embed(["Alfama district"]))[0], 1)
    assert found[0].memory.text == "User lives in Lisbon, in the Alfama district"  # re-embedded
    assert {n.entity for n in await graph.neighbours(user, "User")} == {"Lisbon"}
    decide_prompt = server.requests[1]["messages"][1]["content"]
    assert "0: User lives in Lisbon." in decide_prompt


@pytest_asyncio.fixture
async def running(
    bus: Bus, vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> AsyncIterator[tuple[Bus, QdrantVectorStore, GraphStore, MiniLMEmbedder]]:
    yield bus, vectors, graph, embedder


async def apply_through_worker(
    replies: list[RecordedReply], parts: tuple[Bus, QdrantVectorStore, GraphStore, MiniLMEmbedder]
) -> c.CommandResult:
    bus, vectors, graph, embedder = parts
    async with RecordedOpenAITestServer(replies) as server:
        worker = IngestWorker(
            bus,
            llm_service(server, vectors, graph, embedder),
            IngestSettings(max_deliver=3, retry_backoff_seconds=0.1),
        )
        await worker.start()
        try:
            command = c.AddCommand(user_id=unique(), app="a", text="I'm vegetarian")
            async with bus.result_waiter(command.request_id) as result:
                await bus.publish_command(command)
                return await asyncio.wait_for(result, 30)
        finally:
            await worker.stop()


async def test_rate_limits_are_retried_with_backoff_until_the_model_answers(
    running: tuple[Bus, QdrantVectorStore, GraphStore, MiniLMEmbedder],
) -> None:
    replies = [
        RecordedReply(status=429),
        RecordedReply(status=429),
        RecordedReply(recorded("extract_fenced.md")),
    ]
    done = await apply_through_worker(replies, running)
    assert done.ok and [(r.memory, r.event) for r in done.results] == [
        ("User is vegetarian", c.ChangeKind.ADD)
    ]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [(RecordedReply(status=429), "rate limiting"), (RecordedReply("never JSON"), "malformed JSON")],
)
async def test_a_model_that_keeps_failing_parks_the_command_with_the_reason(
    running: tuple[Bus, QdrantVectorStore, GraphStore, MiniLMEmbedder], reply: RecordedReply, reason: str
) -> None:
    done = await apply_through_worker([reply], running)
    assert not done.ok and done.error is not None
    assert "failed 3 times" in done.error and reason in done.error
