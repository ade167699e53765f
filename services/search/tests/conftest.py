"""The search tests' stores: a local Qdrant engine in the test's folder, the real graph store and
embedder (from openmemory_testing's plugin), with ingest to write and search to read."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.settings import SearchSettings
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.service import IngestService
from openmemory_search.service import SearchService


@pytest_asyncio.fixture
async def stores(
    tmp_path: Path, graph: GraphStore, embedder: MiniLMEmbedder
) -> AsyncIterator[tuple[IngestService, SearchService]]:
    vectors = QdrantVectorStore.open(embedder.model_tag, embedder.dimension, None, tmp_path / "q")
    await vectors.ensure_collection()
    yield (
        IngestService(vectors, graph, embedder, LocalExtractor()),
        SearchService(vectors, graph, embedder, SearchSettings()),
    )
    await vectors.close()
