import uuid
from pathlib import Path

import pytest

from openmemory_core import contracts as c
from openmemory_core.stores.vectors import VectorRecord, VectorStore
from openmemory_core.text.keywords import document_vector, query_vector
from openmemory_testing import at


def record(user: str, text: str, dense: list[float], minute: int = 0) -> VectorRecord:
    memory = c.Memory(
        id=str(uuid.uuid4()), user_id=user, app="test", text=text,
        created_at=at(minute), updated_at=at(minute),
        content_hash=c.content_hash(user, text), request_id="r",
    )  # fmt: skip
    return VectorRecord(memory, dense, document_vector(text))


def axis(i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(8)]


async def test_user_isolation_on_every_read(vector_store: VectorStore) -> None:
    mine = record("alice", "green tea in the morning", axis(0))
    theirs = record("bob", "green tea in the evening", axis(0))
    await vector_store.upsert([mine, theirs])
    assert [m.id for m in await vector_store.list_memories("alice", 10)] == [mine.memory.id]
    assert await vector_store.get("alice", [theirs.memory.id]) == []
    dense = await vector_store.dense_search("alice", axis(0), 10)
    keyword = await vector_store.keyword_search("alice", query_vector("tea"), 10)
    assert [h.memory.id for h in dense] == [mine.memory.id] == [h.memory.id for h in keyword]
    await vector_store.delete("alice", [theirs.memory.id])  # not alice's: nothing happens
    assert [m.id for m in await vector_store.list_memories("bob", 10)] == [theirs.memory.id]


def leaning(i: int) -> list[float]:
    """Unit vectors that all differ in their cosine to any query of `leaning` (no ties by meaning)."""
    raw = [1.0 + ((i * 7 + j * 3) % 11) / (1 + j) for j in range(8)]
    norm = sum(x * x for x in raw) ** 0.5
    return [x / norm for x in raw]


async def test_both_lists_at_once_are_the_two_searches(vector_store: VectorStore) -> None:
    """`dense_and_keyword` (one read of the memories on Edge) answers exactly what `dense_search` and
    `keyword_search` answer one by one: the same memories, ranks and scores, and only the user's."""
    texts = ["green tea at noon", "tea with Lena", "a walk by the river", "coffee and tea", "river tea"]
    await vector_store.upsert([record("alice", t, leaning(i), i) for i, t in enumerate(texts)])
    await vector_store.upsert([record("bob", f"tea river kayak {i}", leaning(i + 5), i) for i in range(6)])
    early = c.SearchFilters(until=at(3))
    for query, dense, filters in (
        ("tea river", leaning(9), None),
        ("lunar", leaning(10), None),
        ("", leaning(11), None),
        ("tea", leaning(12), early),
        ("kayak", leaning(13), None),
    ):  # fmt: skip  (kayak: only bob's word)
        both = await vector_store.dense_and_keyword("alice", dense, query_vector(query), 3, filters)
        one_by_one = (
            await vector_store.dense_search("alice", dense, 3, filters),
            await vector_store.keyword_search("alice", query_vector(query), 3, filters),
        )
        assert [[(h.memory, h.rank) for h in hits] for hits in both] == [
            [(h.memory, h.rank) for h in hits] for hits in one_by_one
        ]
        for mine, theirs in zip(both, one_by_one, strict=True):
            assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], rel=1e-6)
        assert all(h.memory.user_id == "alice" for hits in both for h in hits)
        scores = [h.score for h in both[0]]
        assert len(set(scores)) == len(scores)  # no ties by meaning: the order is the engine's ranking
    dense_hits, keyword_hits = await vector_store.dense_and_keyword(
        "alice", leaning(2), query_vector("tea"), 10
    )
    assert len(dense_hits) == 5 and len(keyword_hits) == 4  # every one of hers by meaning; four say tea
    assert (await vector_store.dense_and_keyword("alice", leaning(2), query_vector("kayak"), 10))[1] == []


async def test_edge_keeps_term_counts_per_asking_user_until_any_write(tmp_path: Path) -> None:
    """Qdrant Edge's adapter counts a term once per asking user between writes: a second search
    counts nothing, another user's first search counts afresh (how fast it answers says nothing of
    what the first searched for), and every kind of write makes them count again."""
    from openmemory_core.stores.edge import EdgeVectorStore

    store = EdgeVectorStore(tmp_path / "vectors", "counts-8", 8)
    await store.ensure_collection()
    tea = record("alice", "tea at noon", axis(0))
    await store.upsert([tea, record("bob", "tea and cake", axis(1)), record("bob", "cake", axis(2))])

    class Counting:
        def __init__(self, shard: object) -> None:
            self.shard, self.counts = shard, 0

        def __getattr__(self, name: str) -> object:
            if name == "count":
                self.counts += 1
            return getattr(self.shard, name)

    counting = Counting(store._shard)
    store._shard = counting

    async def counted(user: str) -> int:
        before = counting.counts
        await store.dense_and_keyword(user, axis(0), query_vector("tea cake"), 5)
        return counting.counts - before - 1  # less the user's total, counted by its index each time

    assert await counted("alice") == 4  # two terms, each the user's count and everyone's
    assert await counted("alice") == 0
    assert await counted("bob") == 4
    writes = {
        "upsert": lambda: store.upsert([record("bob", "more cake", axis(3))]),
        "set_payload": lambda: store.set_payload(tea.memory.model_copy(update={"categories": ["food"]})),
        "delete": lambda: store.delete("bob", [str(uuid.uuid4())]),
    }
    for name, write in writes.items():
        await write()
        assert await counted("alice") == 4, name
        assert await counted("alice") == 0, name
    await store.close()


async def test_search_ranks_by_each_signal(vector_store: VectorStore) -> None:
    a = record("u", "I play the violin every Sunday", axis(1), 1)
    b = record("u", "my cat is called Pixel", axis(2), 2)
    await vector_store.upsert([a, b])
    dense = await vector_store.dense_search("u", axis(2), 2)
    assert [h.memory.id for h in dense] == [b.memory.id, a.memory.id]
    keyword = await vector_store.keyword_search("u", query_vector("violin lessons"), 5)
    assert [h.memory.id for h in keyword] == [a.memory.id]
    assert await vector_store.keyword_search("u", query_vector("the of"), 5) == []


async def test_list_is_newest_first_and_hash_lookup_finds_exact_duplicates(
    vector_store: VectorStore,
) -> None:
    old, new = record("u", "old fact", axis(3), 1), record("u", "new fact", axis(4), 5)
    await vector_store.upsert([old, new])
    assert [m.text for m in await vector_store.list_memories("u", 10)] == ["new fact", "old fact"]
    found = await vector_store.find_by_hash("u", c.content_hash("u", "OLD   fact"))
    assert found is not None and found.id == old.memory.id
    assert await vector_store.find_by_hash("other", c.content_hash("u", "old fact")) is None


async def test_upsert_is_idempotent_and_delete_removes(vector_store: VectorStore) -> None:
    a = record("u", "same point", axis(5))
    await vector_store.upsert([a])
    await vector_store.upsert([a])
    assert len(await vector_store.list_memories("u", 10)) == 1
    await vector_store.delete("u", [a.memory.id])
    assert await vector_store.list_memories("u", 10) == []
    assert await vector_store.get("u", [a.memory.id]) == []


async def test_collection_name_carries_the_model(vector_store: VectorStore) -> None:
    collection = getattr(vector_store, "collection", "")
    assert collection.startswith("memories_") and collection.endswith("-8")


async def test_search_filters_by_app_category_and_time(vector_store: VectorStore) -> None:
    from datetime import timedelta

    old = record("u", "tea in the morning", axis(6), 1)
    new = record("u", "tea at night", axis(6), 5)
    old = VectorRecord(
        old.memory.model_copy(update={"app": "cursor", "categories": ["health"]}), old.dense, old.sparse
    )
    new = VectorRecord(new.memory.model_copy(update={"occurred_at": at(60 * 24 * 30)}), new.dense, new.sparse)
    await vector_store.upsert([old, new])
    tea = query_vector("tea")

    async def texts(filters: c.SearchFilters) -> list[str]:
        dense = await vector_store.dense_search("u", axis(6), 10, filters)
        keyword = await vector_store.keyword_search("u", tea, 10, filters)
        assert sorted(h.memory.id for h in dense) == sorted(h.memory.id for h in keyword)
        return sorted(h.memory.text for h in dense)

    assert await texts(c.SearchFilters()) == ["tea at night", "tea in the morning"]
    assert await texts(c.SearchFilters(app="cursor")) == ["tea in the morning"]
    assert await texts(c.SearchFilters(categories=["health", "work"])) == ["tea in the morning"]
    assert await texts(c.SearchFilters(since=at(60 * 24))) == ["tea at night"]  # by the time it refers to
    assert await texts(c.SearchFilters(until=at(60 * 24) - timedelta(seconds=1))) == ["tea in the morning"]
    assert await texts(c.SearchFilters(app="claude")) == []


def test_the_embedded_engine_is_edge_unless_local_mode_data_is_there(tmp_path: Path) -> None:
    from openmemory_core.stores import open_vector_store
    from openmemory_core.stores.edge import EdgeVectorStore
    from openmemory_core.stores.qdrant import QdrantVectorStore

    assert isinstance(open_vector_store("m-8", 8, tmp_path / "fresh"), EdgeVectorStore)
    assert isinstance(open_vector_store("m-8", 8, tmp_path / "asked", engine="local"), QdrantVectorStore)
    (tmp_path / "old" / "qdrant").mkdir(parents=True)
    assert isinstance(open_vector_store("m-8", 8, tmp_path / "old"), QdrantVectorStore)  # keeps its data
    server = open_vector_store("m-8", 8, tmp_path / "any", url="http://127.0.0.1:1")
    assert isinstance(server, QdrantVectorStore) and not server.local


async def test_keyword_ranking_uses_the_users_own_idf(vector_store: VectorStore) -> None:
    """Another user's memories never weigh on a user's keyword ranking: bob writes "coffee" twenty
    times, which makes it common in the collection, but for alice "coffee" and "tea" are equally rare."""
    await vector_store.upsert([record("bob", f"coffee number {i}", axis(3)) for i in range(20)])
    tea, coffee = record("alice", "tea at noon", axis(0)), record("alice", "coffee at noon", axis(1))
    walk = record("alice", "a walk at dusk", axis(2))
    await vector_store.upsert([tea, coffee, walk])
    hits = await vector_store.keyword_search("alice", query_vector("tea coffee"), 10)
    scores = {h.memory.id: h.score for h in hits}
    assert set(scores) == {tea.memory.id, coffee.memory.id}
    assert scores[tea.memory.id] == pytest.approx(scores[coffee.memory.id], rel=1e-3)
    assert await vector_store.keyword_search("alice", query_vector("number"), 10) == []  # only bob's word


async def test_the_users_idf_follows_every_write(vector_store: VectorStore) -> None:
    """The counts behind the user's IDF follow every write (Qdrant Edge's adapter keeps them between
    writes): alice's "coffee" turns common when she adds it five times, and "tea" as common when she
    then adds that five times; bob's "tea" changes nothing for her. (Not a deletion: after one,
    Qdrant Edge's own IDF still counted the deleted points, and tea over coffee stayed at 1.3;
    qdrant-client's local mode gave 1.0.)"""
    await vector_store.upsert([record("bob", f"coffee number {i}", axis(3)) for i in range(20)])
    tea, coffee = record("alice", "tea at noon", axis(0)), record("alice", "coffee at noon", axis(1))
    await vector_store.upsert([tea, coffee, record("alice", "a walk at dusk", axis(2))])

    async def tea_over_coffee() -> float:
        scores = {
            h.memory.id: h.score
            for h in await vector_store.keyword_search("alice", query_vector("tea coffee"), 20)
        }
        return scores[tea.memory.id] / scores[coffee.memory.id]

    assert await tea_over_coffee() == pytest.approx(1.0, rel=1e-3)
    more = [record("alice", f"coffee again {i}", axis(4)) for i in range(5)]
    await vector_store.upsert(more)
    assert await tea_over_coffee() > 1.2
    await vector_store.upsert([record("alice", f"tea again {i}", axis(5)) for i in range(5)])
    assert await tea_over_coffee() == pytest.approx(1.0, rel=1e-3)
    # Another user's write changes the collection's counts, which the user's weights divide out.
    await vector_store.upsert([record("bob", f"tea number {i}", axis(6)) for i in range(30)])
    assert await tea_over_coffee() == pytest.approx(1.0, rel=1e-3)


@pytest.mark.docker
async def test_a_server_collection_made_by_an_earlier_version_gets_the_missing_indexes(
    qdrant_server_url: str,
) -> None:
    from qdrant_client import AsyncQdrantClient, models

    from openmemory_core.stores.qdrant import QdrantVectorStore
    from openmemory_core.stores.vectors import DENSE, PAYLOAD_INDEXES, collection_name

    client = AsyncQdrantClient(url=qdrant_server_url, check_compatibility=False)
    name = collection_name("olderversion-8")
    dense = models.VectorParams(size=8, distance=models.Distance.COSINE)
    await client.create_collection(name, {DENSE: dense})
    await client.create_payload_index(name, "user_id", models.PayloadSchemaType.KEYWORD)
    store = QdrantVectorStore.open("olderversion-8", 8, qdrant_server_url, None)
    await store.ensure_collection()
    await store.ensure_collection()  # a second start changes nothing
    schema = (await client.get_collection(name)).payload_schema
    assert {field: str(index.data_type.value) for field, index in schema.items()} == PAYLOAD_INDEXES
    await store.close()
    await client.close()


async def test_a_payload_change_keeps_the_vectors_and_states_are_counted(vector_store: VectorStore) -> None:
    kept, paused = record("u", "kept in the morning", axis(0)), record("u", "paused at night", axis(1))
    await vector_store.upsert([kept, paused])
    changed = paused.memory.model_copy(update={"state": c.MemoryState.PAUSED, "categories": ["work"]})
    await vector_store.set_payload(changed)
    [stored] = await vector_store.get("u", [paused.memory.id])
    assert (stored.state, stored.categories, stored.text) == (
        c.MemoryState.PAUSED,
        ["work"],
        "paused at night",
    )
    assert [m.id for m in await vector_store.list_memories("u", 10)] == [kept.memory.id]  # active only
    assert len(await vector_store.list_memories("u", 10, active_only=False)) == 2
    counts = await vector_store.count_by_state()
    assert (counts["active"], counts["paused"], sum(counts.values())) == (1, 1, 2)
    await vector_store.set_payload(changed.model_copy(update={"state": c.MemoryState.ACTIVE}))
    dense = await vector_store.dense_search("u", axis(1), 1)  # the vector is still the one upserted
    assert [h.memory.id for h in dense] == [paused.memory.id]


async def test_existing_ids_and_the_model_of_the_collection(vector_store: VectorStore) -> None:
    records = [record(f"user{i % 3}", f"fact number {i}", axis(i)) for i in range(5)]
    await vector_store.upsert(records)
    ids = [r.memory.id for r in records]
    assert await vector_store.existing([*ids, str(uuid.uuid4())]) == set(ids)  # whoever's they are
    tag = getattr(vector_store, "collection", "").removeprefix("memories_")
    assert tag in await vector_store.model_tags()


async def test_stored_vectors_and_batched_neighbours_stay_within_the_user(vector_store: VectorStore) -> None:
    near = [0.8, 0.6, 0, 0, 0, 0, 0, 0]
    a, b = record("alice", "a", axis(0), 1), record("alice", "b", near, 2)
    theirs = record("bob", "c", axis(0), 3)
    archived = record("alice", "d", axis(0), 4)
    archived = VectorRecord(
        archived.memory.model_copy(update={"state": c.MemoryState.ARCHIVED}), axis(0), archived.sparse
    )
    await vector_store.upsert([a, b, theirs, archived])
    stored = await vector_store.dense_vectors("alice", [a.memory.id, b.memory.id, theirs.memory.id])
    assert set(stored) == {a.memory.id, b.memory.id}  # bob's id gives nothing
    assert stored[b.memory.id] == pytest.approx(near)  # unit length already: as written
    found = await vector_store.dense_neighbours("alice", [axis(0), axis(1)], 5)
    assert [[h.memory.id for h in hits] for hits in found] == [
        [a.memory.id, b.memory.id],  # active memories of alice only, nearest first
        [b.memory.id, a.memory.id],
    ]
    assert found[0][1].score == pytest.approx(0.8)
    assert await vector_store.dense_neighbours("alice", [], 5) == []
