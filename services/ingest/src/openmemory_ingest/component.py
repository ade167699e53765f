"""Registers the ingest component with the runtime."""

from __future__ import annotations

from openmemory_core.runtime import BUS, EMBEDDER, GRAPH, VECTORS, Component, Running, Runtime


async def start(runtime: Runtime) -> Running:
    # Imported here: registering every component must stay cheap for processes that run few.
    from openmemory_ingest.service import IngestService
    from openmemory_ingest.worker import IngestWorker

    service = IngestService(
        await runtime.vectors(),
        await runtime.graph(),
        await runtime.embedder(),
        await runtime.extractor(),
        runtime.settings.llm.similar_memories,
    )
    worker = IngestWorker(await runtime.bus(), service, runtime.settings.ingest)
    await worker.start()
    return worker


component = Component(name="ingest", uses=frozenset({BUS, VECTORS, GRAPH, EMBEDDER}), start=start, order=20)
