import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.servers import embedded_nats, start_embedded
from openmemory_core.settings import IngestSettings
from openmemory_core.stores.graph import FalkorDBGraphStore, GraphStore
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_core.stores.vectors import keyword_vector
from openmemory_core.text.keywords import query_vector
from openmemory_ingest.component import rebuild_then_start
from openmemory_ingest.consolidator import Consolidator
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.service import IngestService
from openmemory_ingest.worker import IngestWorker
from openmemory_testing import eventually, unique


@pytest.fixture
def service(vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder) -> IngestService:
    return IngestService(vectors, graph, embedder, LocalExtractor())


@pytest_asyncio.fixture
async def worker(bus: Bus, service: IngestService) -> AsyncIterator[IngestWorker]:
    running = IngestWorker(bus, service, IngestSettings(max_deliver=2, retry_backoff_seconds=0.1))
    await running.start()
    yield running
    await running.stop()


async def test_add_splits_stores_and_publishes_one_event_per_memory(
    bus: Bus, worker: IngestWorker, vectors: QdrantVectorStore, graph: GraphStore
) -> None:
    user = unique()
    command = c.AddCommand(user_id=user, app="cursor", text="I live in Lisbon. My brother Tom plays chess.")
    async with bus.result_waiter(command.request_id) as result:
        await bus.publish_command(command)
        done = await asyncio.wait_for(result, 20)
    assert done.ok and [r.event for r in done.results] == [c.ChangeKind.ADD, c.ChangeKind.ADD]
    stored = await vectors.list_memories(user, 10)
    assert sorted(m.text for m in stored) == ["User lives in Lisbon.", "User's brother Tom plays chess."]
    assert all(m.app == "cursor" for m in stored)
    assert await graph.memories_mentioning(user, ["Tom"], 10) == [done.results[1].id]
    events = await bus.events_of(user)
    assert sorted(e.memory_id for e in events) == sorted(r.id for r in done.results)
    assert all(e.change is c.ChangeKind.ADD and e.after is not None for e in events)


async def test_applying_a_command_twice_creates_nothing_new(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    user = unique()
    command = c.AddCommand(user_id=user, app="a", text="I drink oat milk.")
    first = await service.apply(command)
    again = await service.apply(command)  # a redelivery
    assert [s.id for s in first.summary] == [s.id for s in again.summary]
    assert len(await vectors.list_memories(user, 10)) == 1
    duplicate = await service.apply(c.AddCommand(user_id=user, app="b", text="i drink  OAT milk."))
    assert [s.event for s in duplicate.summary] == [c.ChangeKind.NONE]
    assert duplicate.events == []
    assert len(await vectors.list_memories(user, 10)) == 1


async def test_delete_and_delete_all_touch_only_the_user(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    user, other = unique(), unique()
    added = await service.apply(
        c.AddCommand(user_id=user, app="a", text="I like tea. I play chess. I live in Oslo.")
    )
    await service.apply(c.AddCommand(user_id=other, app="a", text="Someone else's fact."))
    ids = [s.id for s in added.summary]
    deleted = await service.apply(c.DeleteCommand(user_id=other, app="a", memory_ids=ids[:1]))
    assert deleted.summary == []  # not theirs
    deleted = await service.apply(c.DeleteCommand(user_id=user, app="a", memory_ids=ids[:1]))
    assert [(e.change, e.before is not None) for e in deleted.events] == [(c.ChangeKind.DELETE, True)]
    assert len(await vectors.list_memories(user, 10)) == 2
    wiped = await service.apply(c.DeleteAllCommand(user_id=user, app="a"))
    assert len(wiped.events) == 2
    assert await vectors.list_memories(user, 10) == []
    assert len(await vectors.list_memories(other, 10)) == 1


async def test_a_malformed_command_is_parked_and_the_rest_keep_flowing(
    bus: Bus, worker: IngestWorker
) -> None:
    user = unique()
    subject = c.command_subject(user, bus.partitions)
    await bus.js.publish(subject, b'{"command": {"kind": "add", "user_id": "' + user.encode() + b'"}}')
    good = c.AddCommand(user_id=user, app="a", text="Still flowing.")
    async with bus.result_waiter(good.request_id) as result:
        await bus.publish_command(good)
        assert (await asyncio.wait_for(result, 20)).ok

    async def parked() -> list[c.DeadLetter]:
        letters = []
        sub = await bus.js.subscribe(c.DEAD_LETTER_SUBJECT, ordered_consumer=True)
        try:
            while True:
                msg = await sub.next_msg(timeout=0.3)
                letters.append(c.DeadLetter.model_validate_json(msg.data))
        except Exception:
            pass
        finally:
            await sub.unsubscribe()
        return [x for x in letters if user in x.payload]

    letters = await eventually(parked)
    assert isinstance(letters, list) and "malformed" in letters[0].error


async def test_a_store_that_stays_down_parks_the_command_with_its_reason(
    bus: Bus, vectors: QdrantVectorStore, embedder: MiniLMEmbedder
) -> None:
    from openmemory_core.servers import free_port

    dead_graph = FalkorDBGraphStore("127.0.0.1", free_port())  # nothing listens there
    service = IngestService(vectors, dead_graph, embedder, LocalExtractor())
    settings = IngestSettings(max_deliver=50, store_down_max_deliver=2, retry_backoff_seconds=0.1)
    broken = IngestWorker(bus, service, settings)
    await broken.start()
    try:
        command = c.AddCommand(user_id=unique(), app="a", text="This cannot be written.")
        async with bus.result_waiter(command.request_id) as result:
            await bus.publish_command(command)
            done = await asyncio.wait_for(result, 30)
        assert not done.ok and done.error is not None and "failed 2 times" in done.error
    finally:
        await broken.stop()
        await dead_graph.close()


async def test_a_command_waits_for_the_events_stream_instead_of_being_set_aside(
    tmp_path: Path, vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> None:
    """While a NATS cluster elects a stream leader, publishing an event fails ("no response from
    stream") for seconds. That is the bus being down, not the command failing: the command waits
    for it like for a store that is down, and is applied once the stream answers. (Counted among
    `max_deliver` ordinary failures, a cluster CI run set 7 accepted adds aside this way.) The
    events stream is taken away on a private NATS server, past `max_deliver` deliveries."""
    proc, url = await start_embedded(embedded_nats, tmp_path)
    private = await Bus.connect(url, "test-private", partitions=1)
    service = IngestService(vectors, graph, embedder, LocalExtractor())
    settings = IngestSettings(
        max_deliver=2, store_down_max_deliver=500, retry_backoff_seconds=0.05, max_backoff_seconds=0.1
    )
    worker = IngestWorker(private, service, settings)
    await worker.start()
    try:
        await private.js.delete_stream(c.EVENTS_STREAM)
        user = unique()
        command = c.AddCommand(user_id=user, app="a", text="I keep bees in the garden.")
        async with private.result_waiter(command.request_id) as result:
            await private.publish_command(command)

            async def delivered_often() -> int | None:
                assert not result.done(), f"set aside: {result.result()}"
                info = await private.js.consumer_info(c.COMMANDS_STREAM, c.ingest_durable(0))
                return info.delivered.consumer_seq if info.delivered.consumer_seq > 4 else None

            await eventually(delivered_often)  # tried well past max_deliver, never set aside
            await private.ensure_topology()  # the stream is back
            done = await asyncio.wait_for(result, 20)
        assert done.ok and [r.event for r in done.results] == [c.ChangeKind.ADD], done
        events = await private.events_of(user)
        assert [(e.change, e.memory_id) for e in events] == [(c.ChangeKind.ADD, done.results[0].id)]
        letters = await private.js.stream_info(c.DEAD_LETTER_STREAM)
        assert letters.state.messages == 0
    finally:
        await worker.stop()
        await private.close()
        await proc.stop()


async def test_a_rebuild_after_the_machine_went_down_waits_for_the_bus_before_any_command(
    tmp_path: Path,
    vectors: QdrantVectorStore,
    graph: GraphStore,
    embedder: MiniLMEmbedder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a power cut ingest rebuilds the stores from the events before its first command. A
    rebuild that fails (here the bus is away) is tried again, and meanwhile no command is taken: a
    rebuild cut short leaves stores half cleared. Once it succeeds the lost memory is back, the
    marker is gone, and the worker applies commands."""
    proc, url = await start_embedded(embedded_nats, tmp_path)
    private = await Bus.connect(url, "test-rebuild", partitions=1)
    service = IngestService(vectors, graph, embedder, LocalExtractor())
    service.event_log = private.events_after
    settings = IngestSettings()
    worker = IngestWorker(private, service, settings)
    consolidator = Consolidator(private, vectors, settings, embedder.model_tag)
    user = unique()
    first = await service.apply(
        c.AddCommand(user_id=user, app="a", text="I keep bees in the garden.", infer=False)
    )
    for event in first.events:
        await private.publish_event(event)
    (memory_id,) = [s.id for s in first.summary]
    await vectors.delete(user, [memory_id])  # applied, acked, and lost with the machine
    marker = tmp_path / "run" / "rebuild-pending"
    marker.write_text("the machine went down\n")
    caplog.set_level(logging.ERROR, logger="openmemory_ingest.component")
    await proc.stop()  # the bus is away
    rebuilding = asyncio.create_task(
        rebuild_then_start(service, marker, worker, consolidator, retry_after=(0.1, 0.2))
    )
    try:

        async def failed_twice() -> bool:
            assert not rebuilding.done(), rebuilding
            return (
                sum("rebuild after the machine went down failed" in r.getMessage() for r in caplog.records)
                >= 2
            )

        await eventually(failed_twice, timeout=60)
        assert marker.exists() and await vectors.get(user, [memory_id]) == []
        assert not worker.running
        await proc.start()
        await asyncio.wait_for(rebuilding, 60)
        assert not marker.exists() and worker.running
        assert [m.text for m in await vectors.get(user, [memory_id])] == ["I keep bees in the garden."]
        command = c.AddCommand(user_id=user, app="a", text="The hives face south.", infer=False)
        async with private.result_waiter(command.request_id) as result:
            await private.publish_command(command)
            assert (await asyncio.wait_for(result, 20)).ok
    finally:
        rebuilding.cancel()
        with contextlib.suppress(BaseException):
            await rebuilding
        await consolidator.stop()
        await worker.stop()
        await private.close()
        await proc.stop()


async def test_a_move_supersedes_the_old_home_and_deleting_it_restores(
    service: IngestService, vectors: QdrantVectorStore, graph: GraphStore
) -> None:
    user = unique()
    first = await service.apply(c.AddCommand(user_id=user, app="a", text="I live in Lisbon."))
    lisbon_id = first.summary[0].id
    moved = await service.apply(c.AddCommand(user_id=user, app="a", text="I moved to Berlin last month."))
    assert [(s.event, s.id == lisbon_id) for s in moved.summary] == [
        (c.ChangeKind.ADD, False),
        (c.ChangeKind.UPDATE, True),
    ]
    berlin_id = moved.summary[0].id
    (old,) = await vectors.get(user, [lisbon_id])
    assert old.superseded_by == berlin_id and old.relations[0].object == "Lisbon"
    update = next(e for e in moved.events if e.change is c.ChangeKind.UPDATE)
    assert update.before is not None and update.before.superseded_by is None
    homes = {n.entity: n.valid_to for n in await graph.neighbours(user, "User") if n.relation == "LIVES_IN"}
    assert homes["Berlin"] is None and homes["Lisbon"] is not None

    undone = await service.apply(c.DeleteCommand(user_id=user, app="a", memory_ids=[berlin_id]))
    assert [(s.event, s.id) for s in undone.summary] == [
        (c.ChangeKind.DELETE, berlin_id),
        (c.ChangeKind.UPDATE, lisbon_id),
    ]
    (restored,) = await vectors.get(user, [lisbon_id])
    assert restored.superseded_by is None
    homes = {n.entity: n.valid_to for n in await graph.neighbours(user, "User") if n.relation == "LIVES_IN"}
    assert homes == {"Lisbon": None}


async def test_relative_dates_become_the_memory_time(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    user = unique()
    sent = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    command = c.AddCommand(user_id=user, app="a", text="I went hiking yesterday.", occurred_at=sent)
    await service.apply(command)
    (memory,) = await vectors.list_memories(user, 10)
    assert memory.text == "User went hiking on 7 May 2023."
    assert memory.occurred_at is not None and memory.occurred_at.date().isoformat() == "2023-05-07"


async def test_an_mcp_add_and_a_bus_add_said_at_the_same_time_get_the_same_keywords(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    """MCP cannot set `occurred_at`; its memory is dated by when it was said (`Memory.when`), so a
    question naming that month finds it as it finds a bus add that gave the time."""
    said = datetime(2026, 3, 10, 9, tzinfo=UTC)
    text = "I repainted the kitchen."
    over_mcp = c.AddCommand(user_id=unique(), app="a", text=text, infer=False, issued_at=said)
    over_bus = c.AddCommand(
        user_id=unique(),
        app="a",
        text=text,
        infer=False,
        occurred_at=said,
        issued_at=said + timedelta(hours=5),
    )
    stored = []
    for command in (over_mcp, over_bus):
        (added,) = (await service.apply(command)).summary
        (memory,) = await vectors.get(command.user_id, [added.id])
        stored.append(keyword_vector(memory))
    assert stored[0] == stored[1]
    assert set(query_vector("March 2026").indices) <= set(stored[0].indices)  # the month is a keyword


async def test_a_change_word_in_the_message_does_not_replace_an_unrelated_memory(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    """'I moved' speaks for the home fact of its message, not for every other fact in it."""
    user = unique()
    nurse = await service.apply(c.AddCommand(user_id=user, app="a", text="I work as a nurse."))
    (nurse_id,) = [s.id for s in nurse.summary]
    said = "I moved to Lisbon. My sister Anna lives in Vienna. I am allergic to peanuts."
    moved = await service.apply(c.AddCommand(user_id=user, app="a", text=said))
    assert [s.event for s in moved.summary] == [c.ChangeKind.ADD] * 3
    (kept,) = await vectors.get(user, [nurse_id])
    assert kept.superseded_by is None


async def test_a_worker_stopped_in_a_backlog_hands_it_on_in_order_at_once(
    bus: Bus, service: IngestService, vectors: QdrantVectorStore
) -> None:
    user = unique()
    texts = [f"Note {i}: the plant on shelf {i} needs water." for i in range(24)]
    for text in texts:  # one user: one partition, a backlog behind the first command
        await bus.publish_command(c.AddCommand(user_id=user, app="a", text=text, infer=False))
    first = IngestWorker(bus, service, IngestSettings())
    await first.start()

    async def some_applied() -> bool:
        return len(await vectors.list_memories(user, 100)) >= 3

    await eventually(some_applied, timeout=30)
    await first.stop()  # a command the server sent on the open request is handed back, not held
    stopped_at = len(await vectors.list_memories(user, 100))
    assert stopped_at < len(texts), "the whole backlog went before the stop: the test saw no stop"
    second = IngestWorker(bus, service, IngestSettings())
    await second.start()
    try:

        async def all_applied() -> bool:
            return len(await vectors.list_memories(user, 100)) == len(texts)

        # well inside the consumer's ack wait (60 s): no command waited for it
        await eventually(all_applied, timeout=20)
    finally:
        await second.stop()
    added = [e.after.text for e in await bus.events_of(user) if e.after is not None]
    assert added == texts  # each once, in the order sent
