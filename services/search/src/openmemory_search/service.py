"""Search logic: hybrid retrieval (dense + keyword + graph), list and get, always per user."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from nats.js.kv import KeyValue

from openmemory_core import contracts as c
from openmemory_core.apps import require_app
from openmemory_core.bus import Bus
from openmemory_core.embeddings import Embedder
from openmemory_core.errors import ConfigurationError, InvalidInput, NotFound, StoreUnavailable
from openmemory_core.settings import SearchSettings
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.vectors import VectorStore
from openmemory_core.telemetry import search_stage
from openmemory_core.text.dates import asks_for_latest, asks_when, event_named, query_period
from openmemory_core.text.keywords import query_vector
from openmemory_core.text.plans import plan_note
from openmemory_search.cross import CrossEncoder
from openmemory_search.decompose import decompose
from openmemory_search.names import find_entities
from openmemory_search.paging import list_page
from openmemory_search.profile import MAX_MEMORIES, build_profile
from openmemory_search.ranking import (
    SHIPPED,
    Fused,
    HybridRanker,
    RankingParams,
    around_event,
    named_periods,
    telling_time,
    with_replacements,
)

log = logging.getLogger(__name__)


class SearchService:
    def __init__(
        self,
        vectors: VectorStore,
        graph: GraphStore,
        embedder: Embedder,
        settings: SearchSettings,
        bus: Bus | None = None,
        apps: KeyValue | None = None,
        ranking: RankingParams = SHIPPED,
        cross: CrossEncoder | None = None,
    ) -> None:
        """`cross`: the cross-encoder for `ranking.rerank_top` (one is made, and loads on first use,
        when that is on and none is given)."""
        self.bus = bus
        self.apps = apps
        self.vectors = vectors
        self.graph = graph
        self.embedder = embedder
        self.settings = settings
        self.ranker = HybridRanker(ranking)  # the fusion's constants: `ranking.RankingParams`
        self.cross = (cross or CrossEncoder()) if ranking.rerank_top else None
        self._cross_refused = False  # said in the log once (`_cross`)
        # The step's own worker: searches over turns take their turn at the model one at a time
        # (it uses every core already), and never hold the threads that embedded stores, the
        # query's embedding and ingest run on.
        self._ordering = ThreadPoolExecutor(1, thread_name_prefix="cross-encoder") if self.cross else None

    def close(self) -> None:
        """Let the cross-encoder's worker go (a step under way finishes first, unawaited)."""
        if self._ordering is not None:
            self._ordering.shutdown(wait=False)

    async def _check_app(self, user_id: str, app: str | None) -> None:
        """Defence in depth: the gateway checked the app already; search checks again."""
        if app is not None and self.apps is not None:
            await require_app(self.apps, user_id, app, "read")

    async def search(self, request: c.SearchRequest) -> c.SearchResponse:
        await self._check_app(request.user_id, request.app)
        query = request.query.strip()
        if not query:
            raise InvalidInput("the query is empty")
        if len(query) > c.MAX_QUERY_CHARS:
            raise InvalidInput(f"the query is longer than {c.MAX_QUERY_CHARS} characters")
        candidates = max(self.settings.candidates, request.limit)
        with search_stage("embed"):
            (dense,) = await self.embedder.embed([query])
        filters = request.filters
        with search_stage("lists"):
            (dense_hits, keyword_hits), (graph_memories, missing) = await asyncio.gather(
                self.vectors.dense_and_keyword(
                    request.user_id, dense, query_vector(query), candidates, filters
                ),
                self._graph_or_nothing(request.user_id, query, candidates),
            )
        ranked = {"dense": [h.memory for h in dense_hits], "keyword": [h.memory for h in keyword_hits]}
        if self.ranker.params.graph:
            ranked["graph"] = [m for m in graph_memories if filters.admits(m)]
        with search_stage("more_lists"):
            within = _narrowed(filters, query_period(query, c.now()))
            if within is not None:  # the question names a period: what is about it, by meaning
                in_period = await self.vectors.dense_search(request.user_id, dense, candidates, within)
                ranked["time"] = [h.memory for h in in_period]
            if self.ranker.params.recency and asks_for_latest(query):  # "currently": the newest first
                n = self.ranker.params.recency_pool
                pool = {m.id: m for m in ranked["dense"][:n] + ranked["keyword"][:n]}
                ranked["recency"] = sorted(pool.values(), key=_when, reverse=True)
            if self.ranker.params.told_time and asks_when(query):  # "when did …": those that tell a time
                ranked["told_time"] = telling_time(ranked["dense"], ranked["keyword"])
            ranked |= await self._more_lists(request.user_id, query, dense, candidates, filters)
        with search_stage("rank"):
            strengths = {"dense": [h.score for h in dense_hits], "keyword": [h.score for h in keyword_hits]}
            fused = self.ranker.scores(ranked, strengths)
            best = self.ranker.best(fused)
            said_before = await self._said_before(request.user_id, best, fused, filters)
            finish = functools.partial(
                self.ranker.finish, fused, best, said_before, request.limit, question=query
            )
            # Over conversation turns the cross-encoder may run: tens of milliseconds of CPU, off the
            # event loop. Over facts alone (no memory linked to a turn before it) it never does.
            turns = said_before or any(f.memory.previous for f in fused.values())
            if self._ordering is not None and turns:
                step = contextvars.copy_context().run  # the stage's span and timing follow it
                ordered = await asyncio.get_running_loop().run_in_executor(
                    self._ordering, step, functools.partial(finish, cross=self._cross)
                )
            else:
                ordered = finish()
            ordered = await self._current_first(request.user_id, ordered, filters, request.limit)
        now = c.now()  # a plan whose date has passed says so (`text.plans`); nothing stored changes
        hits = [
            c.ScoredMemory(
                memory=f.memory, score=round(f.score, 6), signals=f.signals,
                note=plan_note(f.memory.text, f.memory.created_at, now),
            )
            for f in ordered
        ]  # fmt: skip
        return c.SearchResponse(hits=hits, missing_signals=missing)

    def _cross(self, question: str, texts: list[str]) -> list[float] | None:
        """The cross-encoder's scores; None, and the learned order stands, if its files are missing
        or not the expected ones (said in the log once, and again only at a restart)."""
        assert self.cross is not None
        with search_stage("rerank"):
            try:
                return self.cross.scores(question, texts)
            except ConfigurationError as refused:
                if not self._cross_refused:
                    log.error(
                        "the cross-encoder cannot run, searches use the learned order alone: %s", refused
                    )
                    self._cross_refused = True
                return None

    async def _more_lists(
        self, user_id: str, query: str, dense: list[float], candidates: int, filters: c.SearchFilters
    ) -> dict[str, list[c.Memory]]:
        """The lists of the steps that are on (`RankingParams`): each part of a question that needs
        several memories, by meaning and by words; what is about the question within a season, a
        week, before or after a date, or before or after an event it names."""
        params, lists = self.ranker.params, dict[str, list[c.Memory]]()
        parts = decompose(query) if params.parts else []
        event = event_named(query) if params.event else None
        texts = [*parts, *([event[1]] if event else [])]
        extra = await self.embedder.embed(texts) if texts else []
        for i, (part, vector) in enumerate(zip(parts, extra, strict=False)):
            by_meaning, by_words = await self.vectors.dense_and_keyword(
                user_id, vector, query_vector(part), candidates, filters
            )
            lists[f"parts:{i}:dense"] = [h.memory for h in by_meaning]
            lists[f"parts:{i}:keyword"] = [h.memory for h in by_words]
        periods = named_periods(query, c.now(), params)
        if event and (found := await self.vectors.dense_search(user_id, extra[-1], 1, filters)):
            periods["event"] = around_event(event[0], found[0].memory.when)
        for name, period in periods.items():
            if (within := _narrowed(filters, period)) is not None:
                hits = await self.vectors.dense_search(user_id, dense, candidates, within)
                lists[name] = [h.memory for h in hits]
        return lists

    async def _current_first(
        self, user_id: str, ordered: list[Fused], filters: c.SearchFilters, limit: int
    ) -> list[Fused]:
        """Each superseded hit's replacement above it (`ranking.with_replacements`), following a
        chain of replacements a few steps: one read by id per step, only when one is missing."""
        for _ in range(REPLACEMENT_STEPS):
            present = {f.memory.id for f in ordered}
            wanted = [
                f.memory.superseded_by
                for f in ordered
                if f.memory.superseded_by and f.memory.superseded_by not in present
            ]
            if not wanted:
                break
            found = await self.vectors.get(user_id, wanted)
            usable = {m.id: m for m in found if m.state == c.MemoryState.ACTIVE and filters.admits(m)}
            if not usable:
                break
            ordered = with_replacements(ordered, usable, limit)
        return ordered

    async def _said_before(
        self, user_id: str, best: list[Fused], fused: dict[str, Fused], filters: c.SearchFilters
    ) -> list[c.Memory]:
        """The memories said just before the best hits that no signal ranked: one read by id."""
        wanted = [f.memory.previous for f in best if f.memory.previous and f.memory.previous not in fused]
        if not wanted:
            return []
        found = await self.vectors.get(user_id, wanted)
        return [m for m in found if m.state == c.MemoryState.ACTIVE and filters.admits(m)]

    async def _graph_or_nothing(
        self, user_id: str, query: str, limit: int
    ) -> tuple[list[c.Memory], list[str]]:
        """The graph's candidates; while the graph store is down, none, and the answer says so.
        With the graph's weight at 0 (as shipped: it gained nothing on the held-out folds) the graph
        is not asked: its list would change no score and cost a graph query and a read by ids."""
        if not self.ranker.params.graph:
            return [], []
        try:
            return await self._graph_candidates(user_id, query, limit), []
        except StoreUnavailable:
            log.warning("the graph store is down: searching without the graph signal")
            return [], ["graph"]

    async def _graph_candidates(self, user_id: str, query: str, limit: int) -> list[c.Memory]:
        names = find_entities(query)
        if not names:
            return []
        ids = await self.graph.memories_mentioning(user_id, names, limit)
        by_id = {m.id: m for m in await self.vectors.get(user_id, ids)}
        return [by_id[i] for i in ids if i in by_id and by_id[i].state == c.MemoryState.ACTIVE]

    async def list_memories(self, request: c.ListRequest) -> c.ListResponse:
        await self._check_app(request.user_id, request.app)
        return await list_page(self.vectors, request)

    async def get(self, request: c.GetRequest) -> c.GetResponse:
        await self._check_app(request.user_id, request.app)
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
        """An entity's relations in the user's own graph, current and closed (with a limit: at most
        that many, the current ones first)."""
        await self._check_app(request.user_id, request.app)
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
        if request.limit is not None and len(edges) > request.limit:
            edges = sorted(edges, key=lambda e: not e.current)[: request.limit]
            return c.GraphResponse(entity=request.entity, edges=edges, truncated=True)
        return c.GraphResponse(entity=request.entity, edges=edges)

    async def profile(self, request: c.ProfileRequest) -> c.ProfileResponse:
        """A short summary of the user from their newest current memories (`profile.build_profile`)."""
        await self._check_app(request.user_id, request.app)
        memories = await self.vectors.list_memories(request.user_id, MAX_MEMORIES, active_only=True)
        return await asyncio.to_thread(build_profile, memories)

    async def _all(self, user_id: str) -> list[c.Memory]:
        return await self.vectors.list_memories(user_id, BROWSE_LIMIT, active_only=False)

    async def browse(self, request: c.BrowseRequest) -> c.BrowseResponse:
        """Every memory of the user that passes the filters, sorted, one page of them."""
        if request.since and request.until and request.since > request.until:
            raise InvalidInput("'since' is after 'until'")
        needle = (request.text or "").strip().casefold()
        states = set(request.states)
        since = request.since.timestamp() if request.since else None
        until = request.until.timestamp() if request.until else None

        def keep(m: c.Memory) -> bool:
            created = m.created_at.timestamp()
            return (
                m.state in states
                and (not needle or needle in m.text.casefold())
                and (request.app is None or m.app == request.app)
                and (request.category is None or request.category in m.categories)
                and (since is None or created >= since)
                and (until is None or created <= until)
            )

        found = [m for m in await self._all(request.user_id) if keep(m)]
        field, descending = SORT_KEYS[request.sort]
        found.sort(key=field, reverse=descending)
        start = (request.page - 1) * request.page_size
        return c.BrowseResponse(
            memories=found[start : start + request.page_size],
            total=len(found),
            page=request.page,
            page_size=request.page_size,
        )

    async def stats(self, request: c.StatsRequest) -> c.StatsResponse:
        memories = [m for m in await self._all(request.user_id) if m.state != c.MemoryState.DELETED]
        by_state = Counter(m.state.value for m in memories)
        by_app = Counter(m.app for m in memories)
        by_category = Counter(cat for m in memories for cat in m.categories)
        per_day = Counter(m.created_at.date().isoformat() for m in memories)
        return c.StatsResponse(
            total=len(memories),
            by_state=dict(by_state),
            by_app=[c.Count(name=k, count=v) for k, v in by_app.most_common()],
            by_category=[c.Count(name=k, count=v) for k, v in by_category.most_common()],
            per_day=[c.Count(name=k, count=per_day[k]) for k in sorted(per_day)],
            embedding_model=self.embedder.model_tag,
        )

    async def user_graph(self, request: c.UserGraphRequest) -> c.UserGraphResponse:
        triples = await self.graph.relations_of_user(request.user_id, request.limit)
        entities = sorted({t.subject for t in triples} | {t.object for t in triples})
        return c.UserGraphResponse(entities=entities, relations=triples)


#: How many replacements in a row a search follows to put the current fact first.
REPLACEMENT_STEPS = 3


def _when(memory: c.Memory) -> float:
    return memory.when.timestamp()


def _narrowed(filters: c.SearchFilters, period: tuple[datetime, datetime] | None) -> c.SearchFilters | None:
    """The request's filters within the period a question names; None when it names none, or when
    the two do not overlap."""
    if period is None:
        return None
    since = max(x for x in (filters.since, period[0]) if x is not None)
    until = min(x for x in (filters.until, period[1]) if x is not None)
    return filters.model_copy(update={"since": since, "until": until}) if since <= until else None


#: The dashboard's list reads a user's memories whole; beyond this many it shows the newest.
BROWSE_LIMIT = 50_000

SORT_KEYS: dict[str, tuple[Callable[[c.Memory], float], bool]] = {
    "created_desc": (lambda m: m.created_at.timestamp(), True),
    "created_asc": (lambda m: m.created_at.timestamp(), False),
    "updated_desc": (lambda m: m.updated_at.timestamp(), True),
    "time_desc": (lambda m: m.when.timestamp(), True),
    "time_asc": (lambda m: m.when.timestamp(), False),
}
