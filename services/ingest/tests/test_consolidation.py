"""Consolidation on real stores and a real bus: near-duplicates of a user are folded into one memory
with their history kept, hard negatives and other users' memories are left alone, a dry run changes
nothing, and temporary memories are archived once their time is over."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.settings import IngestSettings
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_ingest.consolidation import (
    ARCHIVED_REASON,
    MERGED_FROM,
    MERGED_INTO,
    SIMILARITY,
    content_words,
    features,
    same_fact,
)
from openmemory_ingest.consolidator import Consolidator
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.service import IngestService
from openmemory_ingest.worker import IngestWorker
from openmemory_testing import unique

DATA = Path(__file__).parent / "data" / "near_duplicates.json"


@pytest.fixture
def service(vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder) -> IngestService:
    return IngestService(vectors, graph, embedder, LocalExtractor())


@pytest_asyncio.fixture
async def consolidator(
    bus: Bus, service: IngestService, vectors: QdrantVectorStore, embedder: MiniLMEmbedder
) -> AsyncIterator[Consolidator]:
    settings = IngestSettings(max_deliver=2, retry_backoff_seconds=0.1, consolidate_interval_hours=0)
    worker = IngestWorker(bus, service, settings)
    await worker.start()
    job = Consolidator(bus, vectors, settings, embedder.model_tag)
    await job.start()
    yield job
    await job.stop()
    await worker.stop()


async def add(bus: Bus, user: str, text: str, **fields: object) -> list[str]:
    command = c.AddCommand(user_id=user, app="a", text=text, **fields)  # type: ignore[arg-type]
    async with bus.result_waiter(command.request_id) as result:
        await bus.publish_command(command)
        done = await asyncio.wait_for(result, 30)
    assert done.ok, done.error
    return [r.id for r in done.results]


async def request(bus: Bus, user: str, dry_run: bool) -> c.ConsolidationReport:
    """Through the subject the CLI uses."""
    ask = c.ConsolidateRequest(user_id=user, dry_run=dry_run)
    msg = await bus.nc.request(c.CONSOLIDATE_SUBJECT, ask.model_dump_json().encode(), timeout=120)
    reply = c.Reply.model_validate_json(msg.data)
    assert reply.ok, reply.error
    return c.ConsolidationReport.model_validate(reply.result)


async def snapshot(vectors: QdrantVectorStore, bus: Bus, user: str) -> tuple[list[str], int]:
    memories = await vectors.list_memories(user, 100, active_only=False)
    return sorted(m.model_dump_json() for m in memories), len(await bus.events_of(user))


async def test_near_duplicates_are_merged_with_their_history_and_the_rest_is_left_alone(
    bus: Bus, consolidator: Consolidator, vectors: QdrantVectorStore
) -> None:
    user, other = unique("cons"), unique("cons")
    (cats,) = await add(bus, user, "I have two cats")
    (cats_again,) = await add(bus, user, "I've got two cats")
    (coffee,) = await add(bus, user, "I drink coffee every morning")
    (coffee_again,) = await add(bus, user, "Every morning I drink coffee")
    hard = [await add(bus, user, t) for t in ("I like tea", "I don't like tea", "I have three cats")]
    (others_cats,) = await add(bus, other, "I've got two cats")
    before = await snapshot(vectors, bus, user)
    others_before = await snapshot(vectors, bus, other)

    planned = await request(bus, user, dry_run=True)
    assert planned.dry_run and planned.applied == [] and planned.request_id is None
    groups = sorted(sorted([m.keep, *m.merged]) for m in planned.merges)
    assert groups == sorted([sorted([cats, cats_again]), sorted([coffee, coffee_again])])
    assert await snapshot(vectors, bus, user) == before  # a dry run changes nothing, stores or events

    done = await request(bus, user, dry_run=False)
    assert sorted(sorted([m.keep, *m.merged]) for m in done.merges) == groups
    assert len(done.applied) == 4 and all(s.event is c.ChangeKind.UPDATE for s in done.applied)
    active = {m.id: m for m in await vectors.list_memories(user, 100)}
    assert len(active) == 5
    for merge in done.merges:
        (folded,) = merge.merged
        assert merge.keep in active and folded not in active
        (stored,) = await vectors.get(user, [folded])
        assert stored.state is c.MemoryState.ARCHIVED  # kept, not served: nothing is lost
        assert stored.metadata[MERGED_INTO] == merge.keep
        assert stored.metadata[ARCHIVED_REASON] == f"merged into {merge.keep}"
        assert active[merge.keep].metadata[MERGED_FROM] == [folded]
        history = [e for e in await bus.events_of(user) if e.memory_id == folded]
        assert [e.change for e in history] == [c.ChangeKind.ADD, c.ChangeKind.UPDATE]
        assert history[-1].before is not None and history[-1].before.state is c.MemoryState.ACTIVE
        assert history[-1].after is not None and history[-1].after.metadata[MERGED_INTO] == merge.keep
    # the hard negatives stay, each on its own; the other user's copy is untouched
    assert all(ids[0] in active for ids in hard)
    assert await snapshot(vectors, bus, other) == others_before
    (theirs,) = await vectors.get(other, [others_cats])
    assert theirs.state is c.MemoryState.ACTIVE and MERGED_INTO not in theirs.metadata

    again = await request(bus, user, dry_run=False)  # nothing left to do
    assert again.merges == [] and again.applied == []


async def test_a_plan_applied_later_changes_only_what_still_holds(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    user, other = unique("cons"), unique("cons")
    first = await service.apply(c.AddCommand(user_id=user, app="a", text="I play the guitar"))
    second = await service.apply(c.AddCommand(user_id=user, app="a", text="I play guitar"))
    keep, folded = first.summary[0].id, second.summary[0].id
    merge = c.MergeAction(keep=keep, merged=[folded], similarity=0.99)
    # another user's command naming these ids reaches nothing
    foreign = await service.apply(c.ConsolidateCommand(user_id=other, app="consolidation", merges=[merge]))
    assert foreign.events == [] and len(await vectors.list_memories(user, 10)) == 2
    # the kept memory deleted since the plan: the merge is dropped, the other memory stays active
    await service.apply(c.DeleteCommand(user_id=user, app="a", memory_ids=[keep]))
    stale = await service.apply(c.ConsolidateCommand(user_id=user, app="consolidation", merges=[merge]))
    assert stale.events == [] and [m.id for m in await vectors.list_memories(user, 10)] == [folded]


async def test_temporary_memories_are_archived_after_their_time(
    bus: Bus, consolidator: Consolidator, vectors: QdrantVectorStore
) -> None:
    user = unique("cons")
    now = c.now()
    (expired,) = await add(
        bus,
        user,
        "The door code is 4711",
        infer=False,
        metadata={"expires_at": (now - timedelta(hours=1)).isoformat()},
    )
    (later,) = await add(
        bus,
        user,
        "The hotel is the Miramar",
        infer=False,
        metadata={"expires_at": (now + timedelta(days=2)).isoformat()},
    )
    (flagged,) = await add(
        bus, user, "I'm parked on level 3", infer=False, metadata={"temporary": True},
        issued_at=now - timedelta(days=8),
    )  # fmt: skip
    (fresh,) = await add(bus, user, "My locker is number 12", infer=False, metadata={"temporary": True})
    (plain,) = await add(bus, user, "I grew up near the sea", infer=False)

    planned = await request(bus, user, dry_run=True)
    assert sorted(e.memory_id for e in planned.expiries) == sorted([expired, flagged])
    assert len(await vectors.list_memories(user, 10)) == 5

    done = await request(bus, user, dry_run=False)
    assert sorted(s.id for s in done.applied) == sorted([expired, flagged])
    assert sorted(m.id for m in await vectors.list_memories(user, 10)) == sorted([later, fresh, plain])
    for memory in await vectors.get(user, [expired, flagged]):
        assert memory.state is c.MemoryState.ARCHIVED
        assert memory.metadata[ARCHIVED_REASON].startswith("temporary: expired at ")


async def test_bad_requests_get_a_clear_error(bus: Bus, consolidator: Consolidator) -> None:
    for payload in (b"{}", b"not json", json.dumps({"user_id": "x" * 500}).encode()):
        msg = await bus.nc.request(c.CONSOLIDATE_SUBJECT, payload, timeout=30)
        reply = c.Reply.model_validate_json(msg.data)
        assert not reply.ok and reply.error_code == "invalid_input"
    reply = c.Reply.model_validate_json(
        (await bus.nc.request(c.CONSOLIDATE_SUBJECT, b'{"user_id": "_system"}', timeout=30)).data
    )
    assert not reply.ok and reply.error_code == "invalid_input"


async def test_the_shipped_rules_tell_the_labelled_hard_negatives_apart() -> None:
    """Every labelled non-duplicate whose cosine reaches the shipped threshold is told apart by the
    rules (negation, numbers, entities, relations): the cosine alone would merge them."""
    from openmemory_core.embeddings import MiniLMEmbedder

    extractor, embedder = LocalExtractor(), MiniLMEmbedder()
    pairs = json.loads(DATA.read_text())["pairs"]
    close_negatives = 0
    for pair in (p for p in pairs if not p["duplicate"]):
        sides = []
        for text in (pair["a"], pair["b"]):
            facts = await extractor.extract(text, True, c.now())
            stored = " ".join(f.text for f in facts)
            sides.append((stored, features(stored, [e for f in facts for e in f.entities],
                                           [r for f in facts for r in f.relations])))  # fmt: skip
        va, vb = await embedder.embed([sides[0][0], sides[1][0]])
        if sum(x * y for x, y in zip(va, vb, strict=True)) >= SIMILARITY:
            close_negatives += 1
            assert not same_fact(sides[0][1], sides[1][1]), pair
    assert close_negatives >= 5  # the set holds hard negatives, not only easy ones


async def test_the_periodic_run_expires_for_every_user_and_merges_only_when_turned_on(
    bus: Bus, consolidator: Consolidator, vectors: QdrantVectorStore
) -> None:
    users = [unique("cons"), unique("cons")]
    expired = (c.now() - timedelta(hours=1)).isoformat()
    gone = {}
    for user in users:
        await add(bus, user, "I speak Spanish")
        await add(bus, user, "I can speak Spanish")
        (gone[user],) = await add(
            bus, user, "The gate code is 1234", infer=False, metadata={"expires_at": expired}
        )
    assert set(users) <= set(await consolidator.users())
    assert not consolidator.settings.consolidate_periodic_merge  # the default
    changed = await consolidator.run_once()
    assert changed >= 2  # per user: the expired memory archived; no merge
    for user in users:
        active = await vectors.list_memories(user, 10)
        assert len(active) == 2 and gone[user] not in {m.id for m in active}
        assert all(MERGED_FROM not in m.metadata for m in active)
    consolidator.settings = consolidator.settings.model_copy(update={"consolidate_periodic_merge": True})
    changed = await consolidator.run_once()
    assert changed >= 4  # per user: the folded memory archived, the kept one marked
    for user in users:
        (kept,) = await vectors.list_memories(user, 10)
        assert len(kept.metadata[MERGED_FROM]) == 1


#: Distinct facts that differ only in a content word one has and the other lacks or has another of
#: (MiniLM puts each pair at or above the threshold), and paraphrases that differ in no content word.
SUBSTITUTIONS = [
    ("User bought a white kettle at Muji in March 2019.", "User bought a grey kettle at Muji in March 2019."),
    ("User visited the natural history museum in Lyon.", "User visited the history museum in Lyon."),
    ("User's friend Ana works as a journalist in Nantes.", "User's friend Ana works as a teacher in Nantes."),
    ("User's older brother is a pilot.", "User's younger brother is a pilot."),
]  # fmt: skip
PARAPHRASES = [
    ("User bought a white kettle at Muji in March 2019.",
     "In March 2019, User bought a white kettle at Muji."),
    ("User's favourite colour is green.", "User's favorite color is green."),
    ("User is learning Greek with a tutor called Emil.", "User is learning Greek with a tutor named Emil."),
    ("User's friend Ana works as a nurse in Porto.", "User's friend Ana is working as a nurse in Porto."),
    ("User really likes tea.", "User likes tea."),
]  # fmt: skip


async def test_a_substituted_content_word_keeps_two_close_texts_apart(embedder: MiniLMEmbedder) -> None:
    for a, b in SUBSTITUTIONS:
        va, vb = await embedder.embed([a, b])
        assert sum(x * y for x, y in zip(va, vb, strict=True)) >= SIMILARITY, (a, b)  # the cosine would merge
        assert not same_fact(features(a, [], []), features(b, [], [])), (a, b)
        assert not same_fact(features(b, [], []), features(a, [], [])), (b, a)
    for a, b in PARAPHRASES:
        assert same_fact(features(a, [], []), features(b, [], [])), (a, b)
    assert content_words("user's favourite colour") == content_words("user's favorite color")
    assert content_words("user has got two cats in march") == content_words("user has cats")


async def test_the_planner_merges_a_paraphrase_and_not_a_substitution(
    bus: Bus, consolidator: Consolidator
) -> None:
    """On real vectors: three kettles (two the same fact), two museums, two tutors (the same)."""
    user = unique("cons")
    (white, blue), (natural, history), (called, named) = SUBSTITUTIONS[0], SUBSTITUTIONS[1], PARAPHRASES[2]
    texts = [white, blue, PARAPHRASES[0][1], natural, history, called, named]
    ids = {}
    for i, text in enumerate(texts):  # one app each: verbatim turns of one app would be a conversation
        done = await bus.submit(c.AddCommand(user_id=user, app=f"app{i}", text=text, infer=False), 30)
        assert done is not None and done.ok
        ids[text] = done.results[0].id
    planned = await request(bus, user, dry_run=True)
    groups = sorted(sorted([m.keep, *m.merged]) for m in planned.merges)
    assert groups == sorted([sorted([ids[white], ids[PARAPHRASES[0][1]]]), sorted([ids[called], ids[named]])])
