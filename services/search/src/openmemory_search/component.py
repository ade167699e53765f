"""Registers the search component with the runtime."""

from __future__ import annotations

from typing import Any

from openmemory_core import contracts as c
from openmemory_core.runtime import BUS, EMBEDDER, GRAPH, VECTORS, Component, Running, Runtime


class _Search:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def stop(self) -> None:
        # The shared bus is closed by the runtime, which drains in-flight replies.
        return None


async def start(runtime: Runtime) -> Running:
    # Imported here: registering every component must stay cheap for processes that run few.
    from openmemory_search.service import SearchService

    bus = await runtime.bus()
    service = SearchService(
        await runtime.vectors(), await runtime.graph(), await runtime.embedder(), runtime.settings.search, bus
    )

    async def search(data: dict[str, Any]) -> c.SearchResponse:
        return await service.search(c.SearchRequest.model_validate(data))

    async def list_(data: dict[str, Any]) -> c.ListResponse:
        return await service.list_memories(c.ListRequest.model_validate(data))

    async def get(data: dict[str, Any]) -> c.GetResponse:
        return await service.get(c.GetRequest.model_validate(data))

    async def history(data: dict[str, Any]) -> c.HistoryResponse:
        return await service.history(c.HistoryRequest.model_validate(data))

    async def graph(data: dict[str, Any]) -> c.GraphResponse:
        return await service.graph_of(c.GraphRequest.model_validate(data))

    await bus.serve_query(c.Query.GRAPH, graph)
    await bus.serve_query(c.Query.SEARCH, search)
    await bus.serve_query(c.Query.HISTORY, history)
    await bus.serve_query(c.Query.LIST, list_)
    await bus.serve_query(c.Query.GET, get)
    return _Search(runtime)


component = Component(name="search", uses=frozenset({BUS, VECTORS, GRAPH, EMBEDDER}), start=start, order=10)
