"""Registers the search component with the runtime."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.runtime import BUS, EMBEDDER, GRAPH, VECTORS, Component, Running, Runtime

if TYPE_CHECKING:
    from openmemory_search.service import SearchService


class _Search:
    def __init__(self, subscriptions: list[Subscription], service: SearchService) -> None:
        self.subscriptions = subscriptions
        self.service = service

    async def stop(self) -> None:
        """Stop answering; the shared bus itself is closed by the runtime, which drains replies."""
        for sub in self.subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self.service.close()


async def serve(bus: Bus, service: SearchService) -> list[Subscription]:
    """Answer every query kind on the bus with this service."""
    handlers: list[tuple[c.Query, type[BaseModel], Callable[[Any], Awaitable[BaseModel]]]] = [
        (c.Query.SEARCH, c.SearchRequest, service.search),
        (c.Query.LIST, c.ListRequest, service.list_memories),
        (c.Query.GET, c.GetRequest, service.get),
        (c.Query.HISTORY, c.HistoryRequest, service.history),
        (c.Query.GRAPH, c.GraphRequest, service.graph_of),
        (c.Query.BROWSE, c.BrowseRequest, service.browse),
        (c.Query.STATS, c.StatsRequest, service.stats),
        (c.Query.USER_GRAPH, c.UserGraphRequest, service.user_graph),
        (c.Query.PROFILE, c.ProfileRequest, service.profile),
    ]
    subscriptions: list[Subscription] = []
    for query, request_model, method in handlers:

        async def handle(
            data: dict[str, Any],
            model: type[BaseModel] = request_model,
            answer: Callable[[Any], Awaitable[BaseModel]] = method,
        ) -> BaseModel:
            return await answer(model.model_validate(data))

        subscriptions.append(await bus.serve_query(query, handle))
    return subscriptions


async def start(runtime: Runtime) -> Running:
    # Imported here: registering every component must stay cheap for processes that run few.
    from openmemory_search.cross import CrossEncoder
    from openmemory_search.ranking import SHIPPED
    from openmemory_search.service import SearchService

    bus = await runtime.bus()
    stores = (await runtime.vectors(), await runtime.graph(), await runtime.embedder())
    settings = runtime.settings.search
    ranking = dataclasses.replace(SHIPPED, rerank_top=settings.rerank_top)
    cross = CrossEncoder(threads=runtime.settings.core.model_threads or None)
    service = SearchService(*stores, settings, bus, await bus.apps_bucket(), ranking=ranking, cross=cross)
    return _Search(await serve(bus, service), service)


component = Component(name="search", uses=frozenset({BUS, VECTORS, GRAPH, EMBEDDER}), start=start, order=10)
