"""The vector store: one Qdrant point per memory (dense + keyword vectors, the memory as payload).

`VectorStore` is the small interface ingest and search use; this module also holds what every
engine shares: the record, the payload's shape and indexes, keyword vectors and per-user weighting.
The engines: `stores.qdrant` (a Qdrant server, or qdrant-client's local mode) and `stores.edge`
(Qdrant Edge in this process); `stores.open_vector_store` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from openmemory_core.contracts import Memory, SearchFilters
from openmemory_core.text.keywords import SparseVector, document_vector, idf

T = TypeVar("T")

DENSE = "dense"
KEYWORDS = "keywords"


@dataclass(frozen=True)
class VectorRecord:
    memory: Memory
    dense: list[float]
    sparse: SparseVector


@dataclass(frozen=True)
class Hit:
    memory: Memory
    rank: int
    score: float


class VectorStore(Protocol):
    async def ensure_collection(self) -> None: ...
    async def upsert(self, records: list[VectorRecord]) -> None: ...
    async def get(self, user_id: str, memory_ids: list[str]) -> list[Memory]: ...
    async def set_payload(self, memory: Memory) -> None: ...
    async def find_by_hash(self, user_id: str, content_hash: str) -> Memory | None: ...
    async def delete(self, user_id: str, memory_ids: list[str]) -> None: ...
    async def list_memories(
        self,
        user_id: str,
        limit: int,
        active_only: bool = True,
        filters: SearchFilters | None = None,
        before: float | None = None,
    ) -> list[Memory]: ...
    async def dense_search(
        self, user_id: str, vector: list[float], limit: int, filters: SearchFilters | None = None
    ) -> list[Hit]: ...
    async def keyword_search(
        self, user_id: str, vector: SparseVector, limit: int, filters: SearchFilters | None = None
    ) -> list[Hit]: ...
    async def dense_and_keyword(
        self,
        user_id: str,
        dense: list[float],
        keywords: SparseVector,
        limit: int,
        filters: SearchFilters | None = None,
    ) -> tuple[list[Hit], list[Hit]]: ...
    async def dense_vectors(self, user_id: str, memory_ids: list[str]) -> dict[str, list[float]]: ...
    async def dense_neighbours(
        self, user_id: str, vectors: list[list[float]], limit: int
    ) -> list[list[Hit]]: ...
    async def count_by_state(self) -> dict[str, int]: ...
    async def model_tags(self) -> list[str]: ...
    async def read_collection(
        self, model_tag: str, offset: str | None, limit: int
    ) -> tuple[list[Memory], str | None]: ...
    async def existing(self, memory_ids: list[str]) -> set[str]: ...
    async def close(self) -> None: ...


def collection_name(model_tag: str) -> str:
    """Collections are per embedding model and dimension, so switching models never mixes vectors."""
    return f"memories_{model_tag}"


DERIVED = ("created_ts", "time_ts", "terms")

#: The payload fields every engine indexes (filters, counts), with their index type.
PAYLOAD_INDEXES = {
    "user_id": "keyword", "state": "keyword", "content_hash": "keyword", "app": "keyword",
    "categories": "keyword", "created_ts": "float", "time_ts": "float", "terms": "integer",
}  # fmt: skip


def keyword_vector(memory: Memory) -> SparseVector:
    """Keywords of the text, and of the date the memory refers to ("8 May 2023": `Memory.when`, the
    same on every path, so an MCP add, which cannot set a time, is dated by when it was said), so
    that a question naming a month or a year finds what happened then; and, at a lower weight, of
    the memory said just before it in the same conversation."""
    when = memory.when
    return document_vector(f"{memory.text} {when.day} {when:%B %Y}", memory.context)


def payload_of(memory: Memory, terms: list[int] | None = None) -> dict[str, Any]:
    """The stored fields; `terms`, the keyword vector's indices, when the caller has the vector."""
    payload = memory.model_dump(mode="json")
    payload["created_ts"] = memory.created_at.timestamp()  # numeric, for ordering
    payload["time_ts"] = memory.when.timestamp()  # for time-range filters
    payload["terms"] = keyword_vector(memory).indices if terms is None else terms  # per-user frequencies
    return payload


def per_user(vector: SparseVector, user: tuple[int, list[int]], every: tuple[int, list[int]]) -> SparseVector:
    """A keyword query weighted so that the store's collection-wide IDF becomes the user's own: each
    term's weight is the user's IDF over the collection's, which the IDF modifier multiplies back in.
    (documents, frequency per term) for the user's memories and for the whole collection."""
    weights = []
    for value, mine, everyone in zip(vector.values, user[1], every[1], strict=True):
        if mine == 0 or everyone == 0:
            weights.append(0.0)  # the user has no memory with the term: it cannot score
        else:
            weights.append(value * idf(user[0], mine) / idf(every[0], everyone))
    return SparseVector(vector.indices, weights)


def memory_of(payload: dict[str, Any] | None) -> Memory:
    """The memory a payload holds. `Memory` ignores the `DERIVED` fields (pydantic's default for
    fields it does not have), so the payload is read as it is: copying it without them cost as much
    as the validation itself, and a search reads ~100 payloads."""
    return Memory.model_validate(payload or {})
