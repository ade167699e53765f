"""Ingest and search wired in one process over a real NATS: the product's own worker and search
service, without the HTTP doors. `openmemory bench locomo` measures through it, and the trace tests
follow one add across it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from openmemory_core.bus import Bus
from openmemory_core.embeddings import Embedder
from openmemory_core.settings import IngestSettings, SearchSettings
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.vectors import VectorStore
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.service import IngestService
from openmemory_ingest.worker import IngestWorker
from openmemory_search.component import serve
from openmemory_search.service import SearchService


@asynccontextmanager
async def running_services(
    nats_url: str,
    vectors: VectorStore,
    graph: GraphStore,
    embedder: Embedder,
    partitions: int,
    ingest_embedder: Embedder | None = None,
) -> AsyncIterator[Bus]:
    """An ingest worker (local extractor) and the search service, each on its own connection to
    `nats_url`; yields a third connection for the caller. `ingest_embedder` lets ingest embed with
    a model of its own, as an ingest process of a split deployment does."""
    ingest_bus, search_bus, client = [
        await Bus.connect(nats_url, name, partitions) for name in ("ingest", "search", "client")
    ]
    service = IngestService(vectors, graph, ingest_embedder or embedder, LocalExtractor())
    worker = IngestWorker(ingest_bus, service, IngestSettings())
    await worker.start()
    await serve(search_bus, SearchService(vectors, graph, embedder, SearchSettings(), search_bus))
    try:
        yield client
    finally:
        await worker.stop()
        for bus in (client, search_bus, ingest_bus):
            await bus.close()
