"""Search logic: hybrid retrieval (dense + keyword + graph), list and get, always per user."""

from __future__ import annotations

import asyncio

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.embeddings import Embedder
from openmemory_core.errors import InvalidInput, NotFound
from openmemory_core.extraction import find_entities
from openmemory_core.graph import GraphStore
from openmemory_core.keywords import query_vector
from openmemory_core.settings import SearchSettings
from openmemory_core.vectors import VectorStore
from openmemory_search.ranking import RRF_K, WEIGHTS, HybridRanker


class SearchService:
    def __init__(
        self,
        vectors: VectorStore,
        graph: GraphStore,
        embedder: Embedder,
        settings: SearchSettings,
        bus: Bus | None = None,
    ) -> None:
        self.bus = bus
        self.vectors = vectors
        self.graph = graph
        self.embedder = embedder
        self.settings = settings
        self.ranker = HybridRanker(WEIGHTS, k=RRF_K)

    async def search(self, request: c.SearchRequest) -> c.SearchResponse:
        query = request.query.strip()
        if not query:
            raise InvalidInput("the query is empty")
        if len(query) > c.MAX_QUERY_CHARS:
            raise InvalidInput(f"the query is longer than {c.MAX_QUERY_CHARS} characters")
        candidates = max(self.settings.candidates, request.limit)
        (dense,) = await self.embedder.embed([query])
        filters = request.filters
        dense_hits, keyword_hits, graph_memories = await asyncio.gather(
            self.vectors.dense_search(request.user_id, dense, candidates, filters),
            self.vectors.keyword_search(request.user_id, query_vector(query), candidates, filters),
            self._graph_candidates(request.user_id, query, candidates),
        )
        graph_memories = [m for m in graph_memories if filters.admits(m)]
        ranked = {
            "dense": [h.memory for h in dense_hits],
            "keyword": [h.memory for h in keyword_hits],
            "graph": graph_memories,
        }
        hits = [
            c.ScoredMemory(memory=f.memory, score=round(f.score, 6), signals=f.signals)
            for f in self.ranker.fuse(ranked, request.limit)
        ]
        return c.SearchResponse(hits=hits)

    async def _graph_candidates(self, user_id: str, query: str, limit: int) -> list[c.Memory]:
        names = find_entities(query)
        if not names:
            return []
        ids = await self.graph.memories_mentioning(user_id, names, limit)
        by_id = {m.id: m for m in await self.vectors.get(user_id, ids)}
        return [by_id[i] for i in ids if i in by_id and by_id[i].state == c.MemoryState.ACTIVE]

    async def list_memories(self, request: c.ListRequest) -> c.ListResponse:
        return c.ListResponse(memories=await self.vectors.list_memories(request.user_id, request.limit))

    async def get(self, request: c.GetRequest) -> c.GetResponse:
        if len(request.memory_ids) > c.MAX_IDS_PER_REQUEST:
            raise InvalidInput(f"at most {c.MAX_IDS_PER_REQUEST} memory ids per request")
        valid = [i for i in request.memory_ids if c.is_memory_id(i)]
        found = await self.vectors.get(request.user_id, valid)
        found_ids = {m.id for m in found}
        missing = [i for i in request.memory_ids if i not in found_ids]
        return c.GetResponse(memories=found, missing=missing)

    async def history(self, request: c.HistoryRequest) -> c.HistoryResponse:
        """The memory now and its changes; only the user's own events are ever read."""
        assert self.bus is not None, "history needs the bus"
        current = (
            await self.vectors.get(request.user_id, [request.memory_id])
            if c.is_memory_id(request.memory_id)
            else []
        )
        events = [e for e in await self.bus.events_of(request.user_id) if e.memory_id == request.memory_id]
        if not current and not events:
            raise NotFound(f"no such memory: {request.memory_id}")
        return c.HistoryResponse(memory=current[0] if current else None, events=events)

    async def graph_of(self, request: c.GraphRequest) -> c.GraphResponse:
        """An entity's relations in the user's own graph, current and closed."""
        found = await self.graph.neighbours(request.user_id, request.entity)
        if not found:
            raise NotFound(f"no entity {request.entity!r} with relations in this user's graph")
        edges = [
            c.GraphEdge(
                relation=n.relation, direction="out" if n.direction == "out" else "in", entity=n.entity,
                memory_id=n.memory_id, valid_from=n.valid_from, valid_to=n.valid_to,
            )
            for n in found
        ]  # fmt: skip
        return c.GraphResponse(entity=request.entity, edges=edges)
