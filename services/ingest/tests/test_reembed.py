"""Switching the embedding model: a new collection, and the re-embed command that fills it."""

import json
from pathlib import Path

import pytest

from openmemory_core import contracts as c
from openmemory_core.embeddings import MiniLMEmbedder, OpenAIEmbedder
from openmemory_core.errors import InvalidInput
from openmemory_core.settings import EmbedderSettings
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.service import IngestService
from openmemory_testing import RecordedOpenAITestServer, recorded, unique


async def test_reembed_moves_every_memory_into_the_new_models_collection(
    tmp_path: Path, graph: GraphStore, embedder: MiniLMEmbedder
) -> None:
    alice, bob = unique(), unique()
    old = QdrantVectorStore.open(embedder.model_tag, embedder.dimension, None, tmp_path / "q")
    await old.ensure_collection()
    before = IngestService(old, graph, embedder, LocalExtractor())
    await before.apply(
        c.AddCommand(user_id=alice, app="a", text="I live in Lisbon. My sister Anna plays chess.")
    )
    await before.apply(c.AddCommand(user_id=bob, app="b", text="I'm allergic to peanuts."))
    ids = {m.id for user in (alice, bob) for m in await old.list_memories(user, 10)}
    await old.close()

    vectors = json.loads(recorded("embeddings_8d.json"))
    async with RecordedOpenAITestServer([], embeddings=vectors) as server:
        api = OpenAIEmbedder(
            EmbedderSettings(
                provider="openai", model="Recorded-Embed v1", base_url=server.base_url, dimensions=8
            )
        )
        assert api.model_tag == "recorded-embed-v1-8"
        new = QdrantVectorStore.open(api.model_tag, api.dimension, None, tmp_path / "q")
        await new.ensure_collection()
        after = IngestService(new, graph, api, LocalExtractor())
        assert await new.list_memories(alice, 10) == []  # a new model never mixes its vectors with the old

        moved = await after.apply(c.ReembedCommand(from_model_tag=embedder.model_tag))
        expected = f"re-embedded 3 memories from {embedder.model_tag} into recorded-embed-v1-8"
        assert moved.note == expected + " (0 were there already)"
        assert {m.id for user in (alice, bob) for m in await new.list_memories(user, 10)} == ids
        (home,) = await new.dense_search(alice, (await api.embed(["which city is home"]))[0], 1)
        assert home.memory.text == "User lives in Lisbon." and home.memory.app == "a"
        assert await new.dense_search(bob, (await api.embed(["food allergy"]))[0], 5) != []
        assert (await new.dense_search(alice, (await api.embed(["food allergy"]))[0], 5))[
            0
        ].memory.user_id == alice

        again = await after.apply(c.ReembedCommand(from_model_tag=embedder.model_tag))
        assert (
            again.note is not None
            and "re-embedded 0 memories" in again.note
            and "(3 were there" in again.note
        )
        with pytest.raises(InvalidInput, match="model in use"):
            await after.apply(c.ReembedCommand(from_model_tag="recorded-embed-v1-8"))
        with pytest.raises(InvalidInput, match="no memories stored with 'nope-1'"):
            await after.apply(c.ReembedCommand(from_model_tag="nope-1"))
        await new.close()
