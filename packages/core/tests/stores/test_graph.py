import os
import signal
import threading
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

from openmemory_core import contracts as c
from openmemory_core.errors import StoreUnavailable
from openmemory_core.servers import embedded_falkordb, start_embedded
from openmemory_core.stores.graph import FalkorDBGraphStore, GraphStore
from openmemory_testing import at, unique


def memory(user: str, entities: list[str]) -> c.Memory:
    return c.Memory(
        id=str(uuid.uuid4()), user_id=user, app="t", text=" ".join(entities), entities=entities,
        created_at=at(0), updated_at=at(0), content_hash="h", request_id="r",
    )  # fmt: skip


async def test_entities_merge_per_user_by_normalised_name(graph_store: GraphStore) -> None:
    user, other = unique(), unique()
    first, second = memory(user, ["Anna", "Vienna"]), memory(user, ["anna ", "Berlin"])
    await graph_store.add_memory(first)
    await graph_store.add_memory(second)
    await graph_store.add_memory(memory(other, ["Anna"]))
    assert await graph_store.entities_of(user, first.id) == ["Anna", "Vienna"]
    assert await graph_store.entities_of(user, second.id) == ["Anna", "Berlin"]  # merged: first spelling kept
    mentioning = await graph_store.memories_mentioning(user, ["ANNA"], 10)
    assert sorted(mentioning) == sorted([first.id, second.id])
    assert await graph_store.memories_mentioning(user, ["Nobody"], 10) == []


async def test_delete_removes_only_what_the_memory_alone_supported(graph_store: GraphStore) -> None:
    user = unique()
    first, second = memory(user, ["Anna", "Vienna"]), memory(user, ["Anna"])
    await graph_store.add_memory(first)
    await graph_store.add_memory(second)
    await graph_store.add_memory(memory(user, []))  # a memory without entities is fine too
    await graph_store.delete_memories(user, [first.id])
    assert await graph_store.memories_mentioning(user, ["Anna"], 10) == [second.id]
    assert await graph_store.memories_mentioning(user, ["Vienna"], 10) == []
    await graph_store.delete_memories(unique(), [second.id])  # another user cannot delete it
    assert await graph_store.memories_mentioning(user, ["Anna"], 10) == [second.id]


async def test_names_are_parameters_not_cypher(graph_store: GraphStore) -> None:
    user = unique()
    tricky = memory(user, ["O'Brien", "x'}) DETACH DELETE (n) //"])
    await graph_store.add_memory(tricky)
    assert await graph_store.entities_of(user, tricky.id) == ["O'Brien", "x'}) DETACH DELETE (n) //"]
    assert await graph_store.ping()


async def test_control_characters_in_names_are_dropped_not_fatal(graph_store: GraphStore) -> None:
    """FalkorDB's client writes parameters into the query text, where a NUL would end it (found by
    the admin API fuzzer)."""
    user = unique()
    odd = memory(user, ["Ma\x00ria", "Tab\tCity"])
    await graph_store.add_memory(odd)
    assert await graph_store.entities_of(user, odd.id) == ["Maria", "TabCity"]
    assert await graph_store.neighbours(user, "\x00") == []
    assert await graph_store.memories_mentioning(user, ["maria\x00"], 10) == [odd.id]


def test_the_url_scheme_picks_the_adapter() -> None:
    import pytest

    from openmemory_core.errors import ConfigurationError
    from openmemory_core.stores import open_graph_store
    from openmemory_core.stores.graph import FalkorDBGraphStore, Neo4jGraphStore

    assert isinstance(open_graph_store("falkordb://127.0.0.1:1"), FalkorDBGraphStore)
    assert isinstance(open_graph_store("bolt://neo4j:secret@127.0.0.1:7687"), Neo4jGraphStore)
    with pytest.raises(ConfigurationError, match="not supported"):
        open_graph_store("mysql://x")


def stating(user: str, relations: list[tuple[str, str, str]], minute: int, kinds: dict[str, str]) -> c.Memory:
    names = sorted({n for s, _, o in relations for n in (s, o) if n != "User"})
    return c.Memory(
        id=str(uuid.uuid4()), user_id=user, app="t", text=str(relations), entities=names, entity_kinds=kinds,
        relations=[c.Relation(subject=s, type=t, object=o) for s, t, o in relations],
        created_at=at(minute), updated_at=at(minute), content_hash="h", request_id="r",
    )  # fmt: skip


async def test_a_new_value_closes_the_old_relation_and_deleting_it_reopens(graph_store: GraphStore) -> None:
    from openmemory_ingest.extraction.rules import FUNCTIONAL

    user = unique()
    lisbon = stating(
        user, [("User", "LIVES_IN", "Lisbon"), ("User", "LIKES", "Fado")], 1, {"Lisbon": "place"}
    )
    await graph_store.add_memory(lisbon)
    assert await graph_store.close_superseded(lisbon, FUNCTIONAL) == []
    berlin = stating(user, [("User", "LIVES_IN", "Berlin")], 5, {"Berlin": "place"})
    assert await graph_store.close_superseded(berlin, FUNCTIONAL) == [lisbon.id]
    await graph_store.add_memory(berlin)

    by_object = {n.entity: n for n in await graph_store.neighbours(user, "user")}
    assert by_object["Lisbon"].valid_to == at(5).isoformat() and by_object["Lisbon"].memory_id == lisbon.id
    assert by_object["Berlin"].valid_to is None and by_object["Berlin"].valid_from == at(5).isoformat()
    assert by_object["Fado"].valid_to is None  # LIKES is not replaced by a move
    assert [(n.relation, n.direction, n.entity) for n in await graph_store.neighbours(user, "Berlin")] == [
        ("LIVES_IN", "in", "User")
    ]
    # Saying it again adds nothing new and closes nothing.
    assert await graph_store.close_superseded(berlin, FUNCTIONAL) == []

    assert await graph_store.delete_memories(user, [berlin.id]) == [lisbon.id]
    by_object = {n.entity: n for n in await graph_store.neighbours(user, "User")}
    assert set(by_object) == {"Lisbon", "Fado"} and by_object["Lisbon"].valid_to is None
    assert await graph_store.neighbours(user, "Berlin") == []  # an orphaned entity goes with its memory
    assert await graph_store.memories_mentioning(user, ["Fado"], 10) == [lisbon.id]  # via its relation


async def test_schema_creation_waits_out_a_stalled_store(tmp_path: Path) -> None:
    """A graph store that stops answering for a while (a stall, a slow start) delays start-up;
    it does not fail it. FalkorDB is frozen with SIGSTOP for 3 s against a 1 s query timeout."""
    proc, url = await start_embedded(embedded_falkordb, tmp_path / "graph")
    try:
        address = urlparse(url)
        host, port, password = address.hostname or "", address.port or 0, address.password
        store = FalkorDBGraphStore(host, port, password, timeout=1, schema_tries=6)
        pid = proc.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(3, os.kill, (pid, signal.SIGCONT)).start()
        await store.ensure_schema()  # answered once the store wakes up
        await store.ensure_schema()  # and again, idempotently
        stalled = FalkorDBGraphStore(host, port, password, timeout=1, schema_tries=1)
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailable, match="did not answer"):
                await stalled.ensure_schema()
        finally:
            os.kill(pid, signal.SIGCONT)
        await store.close()
        await stalled.close()
    finally:
        await proc.stop()


async def test_a_replacement_closes_the_old_relations_until_it_is_deleted(graph_store: GraphStore) -> None:
    user = unique()
    acme = stating(user, [("User", "WORKS_AT", "Acme")], 1, {"Acme": "org"})
    globex = stating(user, [("User", "WORKS_AT", "Globex")], 5, {"Globex": "org"})
    await graph_store.add_memory(acme)
    await graph_store.add_memory(globex)
    await graph_store.replace(globex, [acme.id])
    assert await graph_store.replaced_by(user, [globex.id]) == [acme.id]
    assert await graph_store.replaced_by(unique(), [globex.id]) == []  # another user's: nothing
    by_object = {t.object: t for t in await graph_store.relations_of_user(user, 10)}
    assert set(by_object) == {"Acme", "Globex"}
    assert by_object["Acme"].valid_to == at(5).isoformat() and by_object["Globex"].valid_to is None
    assert by_object["Acme"].memory_id == acme.id and by_object["Acme"].relation == "WORKS_AT"
    assert await graph_store.delete_memories(user, [globex.id]) == [acme.id]
    assert [(t.object, t.valid_to) for t in await graph_store.relations_of_user(user, 10)] == [("Acme", None)]


async def test_clearing_a_user_leaves_every_other_user(graph_store: GraphStore) -> None:
    user, other = unique(), unique()
    mine = stating(user, [("User", "LIVES_IN", "Porto")], 1, {"Porto": "place"})
    theirs = stating(other, [("User", "LIVES_IN", "Porto")], 1, {"Porto": "place"})
    await graph_store.add_memory(mine)
    await graph_store.add_memory(theirs)
    await graph_store.clear_user(user)
    assert await graph_store.relations_of_user(user, 10) == []
    assert await graph_store.entities_of(user, mine.id) == []
    assert await graph_store.memories_mentioning(user, ["Porto"], 10) == []
    assert [t.object for t in await graph_store.relations_of_user(other, 10)] == ["Porto"]
    assert await graph_store.memories_mentioning(other, ["Porto"], 10) == [theirs.id]
