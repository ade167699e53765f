"""`VectorStore` on `qdrant-client`: a Qdrant server (a URL), or local mode inside this process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from openmemory_core.contracts import Memory, MemoryState, SearchFilters
from openmemory_core.errors import StoreUnavailable, Unavailable
from openmemory_core.stores.vectors import (
    DENSE,
    KEYWORDS,
    PAYLOAD_INDEXES,
    Hit,
    VectorRecord,
    collection_name,
    memory_of,
    payload_of,
    per_user,
)
from openmemory_core.telemetry import store_call
from openmemory_core.text.keywords import SparseVector

T = TypeVar("T")
log = logging.getLogger(__name__)


def _user_filter(user_id: str, active_only: bool = True) -> models.Filter:
    must: list[models.Condition] = [
        models.FieldCondition(key="user_id", match=models.MatchValue(value=user_id))
    ]
    if active_only:
        must.append(models.FieldCondition(key="state", match=models.MatchValue(value=MemoryState.ACTIVE)))
    return models.Filter(must=must)


def _narrowing(filters: SearchFilters | None) -> list[models.Condition]:
    """The conditions of a search's or a list's filters (app, categories, the time referred to)."""
    if filters is None:
        return []
    must: list[models.Condition] = []
    if filters.app is not None:
        must.append(models.FieldCondition(key="app", match=models.MatchValue(value=filters.app)))
    if filters.categories:
        must.append(models.FieldCondition(key="categories", match=models.MatchAny(any=filters.categories)))
    if filters.since is not None or filters.until is not None:
        since = filters.since.timestamp() if filters.since else None
        until = filters.until.timestamp() if filters.until else None
        must.append(models.FieldCondition(key="time_ts", range=models.Range(gte=since, lte=until)))
    return must


def _search_filter(user_id: str, filters: SearchFilters | None) -> models.Filter:
    flt = _user_filter(user_id)
    return models.Filter(must=[*_listed(flt.must), *_narrowing(filters)])


def _listed(conditions: object) -> list[models.Condition]:
    return list(conditions) if isinstance(conditions, list) else []


class QdrantVectorStore:
    """`VectorStore` on qdrant-client: a server at `url`, or local mode under `path`."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        model_tag: str,
        dimension: int,
        local: bool,
        shard_number: int = 1,
        replication_factor: int = 1,
    ) -> None:
        self._client = client
        self.collection = collection_name(model_tag)
        self._dimension = dimension
        self.local = local
        #: How a new collection is laid out on a Qdrant server (a cluster: shards spread over the
        #: nodes, each kept `replication_factor` times). Local mode has neither.
        self.shard_number = shard_number
        self.replication_factor = replication_factor

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        try:
            async with store_call("qdrant", operation):
                return await call
        except ResponseHandlingException as exc:  # the server cannot be reached (connection, timeout)
            raise StoreUnavailable(f"the vector store is not reachable: {exc}") from exc

    @classmethod
    def open(
        cls,
        model_tag: str,
        dimension: int,
        url: str | None,
        path: Path | None,
        api_key: str | None = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
    ) -> QdrantVectorStore:
        """A server at `url` (its collection's shards and replicas: the arguments, by default
        `OPENMEMORY_QDRANT_SHARD_NUMBER` and `OPENMEMORY_QDRANT_REPLICATION_FACTOR`), or local mode
        under `path`."""
        if url:
            from openmemory_core.settings import CoreSettings

            core = CoreSettings() if shard_number is None or replication_factor is None else None
            return cls(
                AsyncQdrantClient(url=url, api_key=api_key, timeout=10, check_compatibility=False),
                model_tag,
                dimension,
                False,
                shard_number or (core.qdrant_shard_number if core else 1),
                replication_factor or (core.qdrant_replication_factor if core else 1),
            )
        assert path is not None
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = AsyncQdrantClient(path=str(path))
        except RuntimeError as exc:  # "Storage folder ... is already accessed by another instance"
            raise Unavailable(
                f"the embedded vector store at {path} is in use by another process; "
                "run one OpenMemory process per data dir, or set OPENMEMORY_QDRANT_URL"
            ) from exc
        return cls(client, model_tag, dimension, True)

    async def ensure_collection(self) -> None:
        """Create the collection if it is missing, and any payload index it lacks (a collection made
        by an earlier version gets the indexes added since)."""
        try:
            if not await self._client.collection_exists(self.collection):
                await self._client.create_collection(
                    self.collection,
                    vectors_config={
                        DENSE: models.VectorParams(size=self._dimension, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={KEYWORDS: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                    # A server's layout (local mode has no shards): spread over a cluster's nodes.
                    shard_number=None if self.local else self.shard_number,
                    replication_factor=None if self.local else self.replication_factor,
                )
            if self.local:  # local mode ignores payload indexes (and warns)
                return
            info = await self._client.get_collection(self.collection)
            if info.config.params.replication_factor != self.replication_factor:
                # Qdrant does not copy the shards of an existing collection by itself: an operator
                # replicates them (cluster API), the setting only says what a new collection gets.
                log.warning(
                    "the collection %s keeps %s copies per shard, not the %s configured: replicate its "
                    "shards with Qdrant's cluster API (see the README)",
                    self.collection, info.config.params.replication_factor, self.replication_factor,
                )  # fmt: skip
            present = info.payload_schema or {}
            for field, kind in PAYLOAD_INDEXES.items():
                if field not in present:
                    await self._client.create_payload_index(
                        self.collection, field, models.PayloadSchemaType(kind)
                    )
        except (ResponseHandlingException, UnexpectedResponse) as exc:
            raise StoreUnavailable(f"the vector store is not reachable: {exc}") from exc

    async def upsert(self, records: list[VectorRecord]) -> None:
        points = [
            models.PointStruct(
                id=r.memory.id,
                vector={
                    DENSE: r.dense,
                    KEYWORDS: models.SparseVector(indices=r.sparse.indices, values=r.sparse.values),
                },
                payload=payload_of(r.memory, r.sparse.indices),
            )
            for r in records
        ]
        if points:
            await self._timed("upsert", self._client.upsert(self.collection, points=points, wait=True))

    async def get(self, user_id: str, memory_ids: list[str]) -> list[Memory]:
        if not memory_ids:
            return []
        points = await self._timed(
            "get", self._client.retrieve(self.collection, ids=memory_ids, with_payload=True)
        )
        found = [memory_of(p.payload) for p in points]
        return [m for m in found if m.user_id == user_id and m.state != MemoryState.DELETED]

    async def set_payload(self, memory: Memory) -> None:
        """Replace a memory's stored fields, keeping its vectors."""
        await self._timed(
            "set_payload",
            self._client.overwrite_payload(self.collection, payload=payload_of(memory), points=[memory.id]),
        )

    async def find_by_hash(self, user_id: str, content_hash: str) -> Memory | None:
        flt = _user_filter(user_id)
        flt.must = [
            *(flt.must if isinstance(flt.must, list) else []),
            models.FieldCondition(key="content_hash", match=models.MatchValue(value=content_hash)),
        ]
        points, _ = await self._timed(
            "find_by_hash",
            self._client.scroll(self.collection, scroll_filter=flt, limit=1, with_payload=True),
        )
        return memory_of(points[0].payload) if points else None

    async def delete(self, user_id: str, memory_ids: list[str]) -> None:
        if not memory_ids:
            return
        flt = _user_filter(user_id, active_only=False)
        flt.must = [
            *(flt.must if isinstance(flt.must, list) else []),
            models.HasIdCondition(has_id=list(memory_ids)),
        ]
        await self._timed(
            "delete",
            self._client.delete(
                self.collection, points_selector=models.FilterSelector(filter=flt), wait=True
            ),
        )

    async def list_memories(
        self,
        user_id: str,
        limit: int,
        active_only: bool = True,
        filters: SearchFilters | None = None,
        before: float | None = None,
    ) -> list[Memory]:
        """Newest first; with `filters` (app, categories, time) and only those created at `before` or
        earlier (the position a page cursor names)."""
        must = [*_listed(_user_filter(user_id, active_only).must), *_narrowing(filters)]
        if before is not None:
            must.append(models.FieldCondition(key="created_ts", range=models.Range(lte=before)))
        flt = models.Filter(must=must)
        points, _ = await self._timed(
            "list_memories",
            self._client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=limit,
                with_payload=True,
                order_by=models.OrderBy(key="created_ts", direction=models.Direction.DESC),
            ),
        )
        return [memory_of(p.payload) for p in points]

    async def dense_search(
        self, user_id: str, vector: list[float], limit: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        response = await self._timed(
            "dense_search",
            self._client.query_points(
                self.collection,
                query=vector,
                using=DENSE,
                query_filter=_search_filter(user_id, filters),
                limit=limit,
            ),
        )
        return [Hit(memory_of(p.payload), rank, p.score) for rank, p in enumerate(response.points)]

    async def _count(self, user_id: str | None, term: int | None = None, exact: bool = True) -> int:
        """How many memories (of the user, or in all; holding `term`, or any)."""
        must: list[models.Condition] = []
        if user_id is not None:
            must.append(models.FieldCondition(key="user_id", match=models.MatchValue(value=user_id)))
        if term is not None:
            must.append(models.FieldCondition(key="terms", match=models.MatchValue(value=term)))
        counted = self._client.count(self.collection, count_filter=models.Filter(must=must), exact=exact)
        return (await self._timed("count", counted)).count

    async def _per_user(self, user_id: str, vector: SparseVector) -> SparseVector:
        # The totals come from the index (not exact: no scan); equal, one user holds every memory and
        # the collection's IDF is theirs.
        mine, everyone = await asyncio.gather(
            self._count(user_id, exact=False), self._count(None, exact=False)
        )
        if mine == everyone:
            return vector
        user_terms = [self._count(user_id, term) for term in vector.indices]
        all_terms = [self._count(None, term) for term in vector.indices]
        counts = await asyncio.gather(*user_terms, *all_terms)
        n = len(vector.indices)
        return per_user(vector, (mine, list(counts[:n])), (everyone, list(counts[n:])))

    async def dense_and_keyword(
        self,
        user_id: str,
        dense: list[float],
        keywords: SparseVector,
        limit: int,
        filters: SearchFilters | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """`dense_search` and `keyword_search`, concurrently: a server reads payloads in its own
        process, so one read for both would save this one nothing but a round trip."""
        by_meaning, by_words = await asyncio.gather(
            self.dense_search(user_id, dense, limit, filters),
            self.keyword_search(user_id, keywords, limit, filters),
        )
        return by_meaning, by_words

    async def keyword_search(
        self, user_id: str, vector: SparseVector, limit: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        """BM25 with the user's own IDF: other users' memories never weigh on a user's ranking."""
        if not vector.indices:
            return []
        vector = await self._per_user(user_id, vector)
        response = await self._timed(
            "keyword_search",
            self._client.query_points(
                self.collection,
                query=models.SparseVector(indices=vector.indices, values=vector.values),
                using=KEYWORDS,
                query_filter=_search_filter(user_id, filters),
                limit=limit,
            ),
        )
        return [Hit(memory_of(p.payload), rank, p.score) for rank, p in enumerate(response.points)]

    async def dense_vectors(self, user_id: str, memory_ids: list[str]) -> dict[str, list[float]]:
        """The stored dense vectors of the user's memories among these ids."""
        if not memory_ids:
            return {}
        points = await self._timed(
            "dense_vectors",
            self._client.retrieve(
                self.collection, ids=memory_ids, with_payload=["user_id"], with_vectors=[DENSE]
            ),
        )
        found: dict[str, list[float]] = {}
        for p in points:
            vector = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
            if (p.payload or {}).get("user_id") == user_id and isinstance(vector, list):
                found[str(p.id)] = [float(x) for x in vector]  # type: ignore[arg-type]
        return found

    async def dense_neighbours(self, user_id: str, vectors: list[list[float]], limit: int) -> list[list[Hit]]:
        """The user's active memories nearest each vector: one batched request for them all."""
        if not vectors:
            return []
        flt = _user_filter(user_id)
        requests = [
            models.QueryRequest(query=v, using=DENSE, filter=flt, limit=limit, with_payload=True)
            for v in vectors
        ]
        answers = await self._timed(
            "dense_neighbours", self._client.query_batch_points(self.collection, requests=requests)
        )
        return [
            [Hit(memory_of(p.payload), rank, p.score) for rank, p in enumerate(a.points)] for a in answers
        ]

    async def model_tags(self) -> list[str]:
        """The embedding models that have a memory collection here."""
        answer = await self._timed("collections", self._client.get_collections())
        prefix = collection_name("")
        return sorted(col.name[len(prefix) :] for col in answer.collections if col.name.startswith(prefix))

    async def read_collection(
        self, model_tag: str, offset: str | None, limit: int
    ) -> tuple[list[Memory], str | None]:
        """One page of every user's memories in another model's collection (for re-embedding)."""
        points, next_offset = await self._timed(
            "read_collection",
            self._client.scroll(collection_name(model_tag), offset=offset, limit=limit, with_payload=True),
        )
        return [memory_of(p.payload) for p in points], None if next_offset is None else str(next_offset)

    async def existing(self, memory_ids: list[str]) -> set[str]:
        """Which of these ids already have a point in this collection."""
        points = await self._timed(
            "existing", self._client.retrieve(self.collection, ids=memory_ids, with_payload=False)
        )
        return {str(p.id) for p in points}

    async def count_by_state(self) -> dict[str, int]:
        """Memories per state, over all users (for the `openmemory_memories` gauge)."""
        counts = {}
        for state in MemoryState:
            flt = models.Filter(
                must=[models.FieldCondition(key="state", match=models.MatchValue(value=state.value))]
            )
            result = await self._timed(
                "count", self._client.count(self.collection, count_filter=flt, exact=True)
            )
            counts[state.value] = result.count
        return counts

    async def close(self) -> None:
        await self._client.close()
