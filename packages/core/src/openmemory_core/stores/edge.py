"""`VectorStore` on Qdrant Edge: the Rust Qdrant engine inside this process (`qdrant-edge-py`).

The embedded default. One shard per embedding model, under `<data dir>/vectors/<collection>`, with
the same named vectors, payload and filters as the server adapter, and payload indexes that the
engine uses (qdrant-client's local mode ignores them). Edge takes no file lock: the runtime's lock
on the data dir keeps a second process away. Calls run in a worker thread, one at a time per shard.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from openmemory_core.contracts import Memory, MemoryState, SearchFilters
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
)  # fmt: skip
from openmemory_core.telemetry import store_call
from openmemory_core.text.keywords import SparseVector

T = TypeVar("T")
U = TypeVar("U")
#: The most term counts kept between writes (about 200 bytes each with its key).
MAX_TERM_COUNTS = 50_000


def _as_it_is(value: T) -> T:
    return value


class EdgeVectorStore:
    def __init__(self, root: Path, model_tag: str, dimension: int) -> None:
        self.root = root
        self.collection = collection_name(model_tag)
        self._dimension = dimension
        self._shard: Any = None
        self._lock = threading.Lock()
        # (asking user, whether the count is everyone's, keyword term) -> memories holding it: the
        # per-user IDF's counts. Counting a common term scans the points that hold it (0.3 ms a
        # search at 10k memories, 2.5 ms at 100k: bench/README.md), and the counts change only when
        # the shard does: every write empties this, under the same lock as the counting. Even the
        # collection-wide counts are kept per asking user, so that how fast a search answers never
        # tells one user what another searched for.
        self._term_counts: dict[tuple[str, bool, int], int] = {}

    async def _run(self, operation: str, work: Callable[[], T]) -> T:
        """`work` under the shard's lock, in a worker thread."""
        return await self._run_then(operation, work, _as_it_is)

    async def _run_then(self, operation: str, work: Callable[[], T], then: Callable[[T], U]) -> U:
        """`work` under the shard's lock, then `then` on what it gave, in the same worker thread but
        with the lock let go: validating what was read need not hold up other calls."""

        def run() -> U:
            with self._lock:
                raw = work()
            return then(raw)

        async with store_call("qdrant_edge", operation):
            return await asyncio.to_thread(run)

    def _update(self, operation: Any) -> None:
        """Every write to the shard, in the store's thread: the cached term counts go with it."""
        self._term_counts.clear()
        self._shard.update(operation)

    @staticmethod
    def _config(dimension: int) -> Any:
        import qdrant_edge as qe

        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
            sparse_vectors={KEYWORDS: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )

    async def ensure_collection(self) -> None:
        import qdrant_edge as qe

        path = self.root / self.collection

        def open_shard() -> Any:
            if path.exists() and any(path.iterdir()):
                shard = qe.EdgeShard.load(str(path))
            else:
                shard = qe.EdgeShard.create(str(path), self._config(self._dimension))
            for field, kind in PAYLOAD_INDEXES.items():  # idempotent: a shard made before an index gets it
                schema = getattr(qe.PayloadSchemaType, kind.capitalize())
                # Not through `_update`: the shard is not this store's yet, and no count is kept.
                shard.update(qe.UpdateOperation.create_field_index(field, schema))
            return shard

        self._shard = await self._run("open", open_shard)

    # ---- filters -----------------------------------------------------------------------------

    @staticmethod
    def _filter(
        user_id: str, active_only: bool = True, filters: SearchFilters | None = None, **extra: Any
    ) -> Any:
        import qdrant_edge as qe

        must: list[Any] = [qe.FieldCondition(key="user_id", match=qe.MatchValue(user_id))]
        if active_only:
            must.append(qe.FieldCondition(key="state", match=qe.MatchValue(MemoryState.ACTIVE.value)))
        if "content_hash" in extra:
            must.append(qe.FieldCondition(key="content_hash", match=qe.MatchValue(extra["content_hash"])))
        if "ids" in extra:
            must.append(qe.HasIdCondition(set(extra["ids"])))
        if filters is not None:
            if filters.app is not None:
                must.append(qe.FieldCondition(key="app", match=qe.MatchValue(filters.app)))
            if filters.categories:
                must.append(qe.FieldCondition(key="categories", match=qe.MatchAny(list(filters.categories))))
            if filters.since is not None or filters.until is not None:
                since = filters.since.timestamp() if filters.since else None
                until = filters.until.timestamp() if filters.until else None
                must.append(qe.FieldCondition(key="time_ts", range=qe.RangeFloat(gte=since, lte=until)))
        return qe.Filter(must=must)

    # ---- writes ------------------------------------------------------------------------------

    async def upsert(self, records: list[VectorRecord]) -> None:
        import qdrant_edge as qe

        def write() -> None:
            # The points are built in the store's thread too: converting 384 floats and a payload
            # per record is CPU work the event loop would otherwise do on every add.
            points = [
                qe.Point(
                    r.memory.id,
                    {DENSE: r.dense, KEYWORDS: qe.SparseVector(r.sparse.indices, r.sparse.values)},
                    payload_of(r.memory, r.sparse.indices),
                )
                for r in records
            ]
            self._update(qe.UpdateOperation.upsert_points(points))

        if records:
            await self._run("upsert", write)

    async def set_payload(self, memory: Memory) -> None:
        import qdrant_edge as qe

        operation = qe.UpdateOperation.overwrite_payload([memory.id], payload_of(memory))
        await self._run("set_payload", lambda: self._update(operation))

    async def delete(self, user_id: str, memory_ids: list[str]) -> None:
        import qdrant_edge as qe

        if memory_ids:
            flt = self._filter(user_id, active_only=False, ids=memory_ids)
            await self._run("delete", lambda: self._update(qe.UpdateOperation.delete_points_by_filter(flt)))

    # ---- reads -------------------------------------------------------------------------------

    async def get(self, user_id: str, memory_ids: list[str]) -> list[Memory]:
        if not memory_ids:
            return []
        records = await self._run(
            "get", lambda: self._shard.retrieve(list(memory_ids), with_payload=True, with_vector=False)
        )
        found = [memory_of(r.payload) for r in records]
        return [m for m in found if m.user_id == user_id and m.state != MemoryState.DELETED]

    async def existing(self, memory_ids: list[str]) -> set[str]:
        if not memory_ids:
            return set()
        records = await self._run(
            "existing", lambda: self._shard.retrieve(list(memory_ids), with_payload=False, with_vector=False)
        )
        return {str(r.id) for r in records}

    async def find_by_hash(self, user_id: str, content_hash: str) -> Memory | None:
        import qdrant_edge as qe

        request = qe.ScrollRequest(
            limit=1, filter=self._filter(user_id, content_hash=content_hash), with_payload=True
        )
        records, _ = await self._run("find_by_hash", lambda: self._shard.scroll(request))
        return memory_of(records[0].payload) if records else None

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
        import qdrant_edge as qe

        flt = self._filter(user_id, active_only, filters)
        if before is not None:
            flt = qe.Filter(
                must=[*flt.must, qe.FieldCondition(key="created_ts", range=qe.RangeFloat(lte=before))]
            )
        request = qe.ScrollRequest(
            limit=limit, filter=flt, with_payload=True,
            order_by=qe.OrderBy("created_ts", direction=qe.Direction.Desc),
        )  # fmt: skip
        records, _ = await self._run("list_memories", lambda: self._shard.scroll(request))
        return [memory_of(r.payload) for r in records]

    async def _query(self, operation: str, query: Any, limit: int, flt: Any) -> list[Hit]:
        import qdrant_edge as qe

        request = qe.QueryRequest(limit=limit, query=query, filter=flt, with_payload=True)
        points = await self._run(operation, lambda: self._shard.query(request))
        return [Hit(memory_of(p.payload), rank, p.score) for rank, p in enumerate(points)]

    async def dense_search(
        self, user_id: str, vector: list[float], limit: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        import qdrant_edge as qe

        query = qe.Query.Nearest(vector, using=DENSE)
        return await self._query("dense_search", query, limit, self._filter(user_id, filters=filters))

    async def dense_vectors(self, user_id: str, memory_ids: list[str]) -> dict[str, list[float]]:
        """The stored dense vectors of the user's memories among these ids."""
        if not memory_ids:
            return {}
        records = await self._run(
            "dense_vectors",
            lambda: self._shard.retrieve(list(memory_ids), with_payload=["user_id"], with_vector=[DENSE]),
        )
        return {
            str(r.id): list(r.vector[DENSE])
            for r in records
            if (r.payload or {}).get("user_id") == user_id and DENSE in (r.vector or {})
        }

    async def dense_neighbours(self, user_id: str, vectors: list[list[float]], limit: int) -> list[list[Hit]]:
        """The user's active memories nearest each vector: one batched query for them all."""
        import qdrant_edge as qe

        if not vectors:
            return []
        flt = self._filter(user_id)
        query = [
            qe.QueryRequest(
                limit=limit, query=qe.Query.Nearest(v, using=DENSE), filter=flt, with_payload=True
            )
            for v in vectors
        ]
        batch = qe.QueryBatchRequest(query)
        answers = await self._run("dense_neighbours", lambda: self._shard.query_batch(batch))
        return [[Hit(memory_of(p.payload), rank, p.score) for rank, p in enumerate(a)] for a in answers]

    def _term_count(self, user_id: str, everyone: bool, term: int) -> int:
        """The user's memories (`everyone`: all users') holding a keyword term, as the user asks for
        it; in the store's thread."""
        import qdrant_edge as qe

        key = (user_id, everyone, term)
        if (known := self._term_counts.get(key)) is None:
            must: list[Any] = [qe.FieldCondition(key="terms", match=qe.MatchValue(term))]
            if not everyone:
                must.append(qe.FieldCondition(key="user_id", match=qe.MatchValue(user_id)))
            known = int(self._shard.count(qe.CountRequest(filter=qe.Filter(must=must))))
            if len(self._term_counts) >= MAX_TERM_COUNTS:
                self._term_counts.clear()
            self._term_counts[key] = known
        return known

    def _keyword_query(self, user_id: str, vector: SparseVector) -> Any:
        """The keyword query weighted by the user's own IDF (`vectors.per_user`); in the store's thread."""
        import qdrant_edge as qe

        # The index's count of the user's memories and the shard's total: neither scans points.
        user_filter = qe.Filter(must=[qe.FieldCondition(key="user_id", match=qe.MatchValue(user_id))])
        mine = int(self._shard.count(qe.CountRequest(filter=user_filter, exact=False)))
        everyone = int(self._shard.info().points_count)
        if mine != everyone:  # when equal, one user holds every memory: the collection's IDF is theirs
            vector = per_user(
                vector,
                (mine, [self._term_count(user_id, False, term) for term in vector.indices]),
                (everyone, [self._term_count(user_id, True, term) for term in vector.indices]),
            )
        return qe.Query.Nearest(qe.SparseVector(vector.indices, vector.values), using=KEYWORDS)

    async def keyword_search(
        self, user_id: str, vector: SparseVector, limit: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        import qdrant_edge as qe

        if not vector.indices:
            return []

        def search() -> list[Any]:
            request = qe.QueryRequest(
                limit=limit,
                query=self._keyword_query(user_id, vector),
                filter=self._filter(user_id, filters=filters),
                with_payload=True,
            )
            return list(self._shard.query(request))

        points = await self._run("keyword_search", search)
        return [Hit(memory_of(p.payload), rank, p.score) for rank, p in enumerate(points)]

    async def dense_and_keyword(
        self,
        user_id: str,
        dense: list[float],
        keywords: SparseVector,
        limit: int,
        filters: SearchFilters | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """`dense_search` and `keyword_search` in one call: both queries without payloads, then one
        read of the memories they found. The two lists share many memories, and reading a payload
        and validating it as a memory is most of what each list cost (bench/README.md)."""
        import qdrant_edge as qe

        def both() -> tuple[list[list[Any]], list[Any]]:
            flt = self._filter(user_id, filters=filters)
            requests = [qe.QueryRequest(limit=limit, query=qe.Query.Nearest(dense, using=DENSE), filter=flt)]
            if keywords.indices:
                query = self._keyword_query(user_id, keywords)
                requests.append(qe.QueryRequest(limit=limit, query=query, filter=flt))
            answers = [list(a) for a in self._shard.query_batch(qe.QueryBatchRequest(requests))]
            found = list(dict.fromkeys(p.id for a in answers for p in a))
            records = self._shard.retrieve(found, with_payload=True, with_vector=False) if found else []
            return answers, list(records)

        def hits(read: tuple[list[list[Any]], list[Any]]) -> tuple[list[Hit], list[Hit]]:
            answers, records = read
            memories = {r.id: memory_of(r.payload) for r in records}  # ids as the engine gives them
            lists = [
                [Hit(memories[p.id], rank, p.score) for rank, p in enumerate(a)]
                for a in answers
            ]  # fmt: skip
            if any(h.memory.user_id != user_id for hits in lists for h in hits):  # the queries' filter failed
                raise RuntimeError("a search found another user's memory")
            return lists[0], lists[1] if keywords.indices else []

        return await self._run_then("dense_and_keyword", both, hits)

    async def count_by_state(self) -> dict[str, int]:
        import qdrant_edge as qe

        def count() -> dict[str, int]:
            return {
                state.value: self._shard.count(
                    qe.CountRequest(
                        filter=qe.Filter(
                            must=[qe.FieldCondition(key="state", match=qe.MatchValue(state.value))]
                        )
                    )
                )
                for state in MemoryState
            }

        return await self._run("count", count)

    async def model_tags(self) -> list[str]:
        prefix = collection_name("")
        if not self.root.exists():
            return []
        return sorted(
            p.name[len(prefix) :] for p in self.root.iterdir() if p.name.startswith(prefix) and p.is_dir()
        )

    async def read_collection(
        self, model_tag: str, offset: str | None, limit: int
    ) -> tuple[list[Memory], str | None]:
        import qdrant_edge as qe

        path = self.root / collection_name(model_tag)

        def page() -> tuple[list[Memory], str | None]:
            other = qe.EdgeShard.load(str(path))
            try:
                records, next_offset = other.scroll(
                    qe.ScrollRequest(offset=offset, limit=limit, with_payload=True)
                )
            finally:
                other.close()
            return [memory_of(r.payload) for r in records], None if next_offset is None else str(next_offset)

        return await self._run("read_collection", page)

    async def close(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None

            def close() -> None:
                shard.flush()
                shard.close()

            await self._run("close", close)
