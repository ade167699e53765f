"""Applying commands: extract, embed, write vectors and graph, and say what changed.

Every write is idempotent: memory ids derive from the command's request id, and a memory's times
come from the command, so applying a redelivered command again changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from openmemory_core import contracts as c
from openmemory_core.embeddings import Embedder
from openmemory_core.errors import InvalidInput
from openmemory_core.llm_usage import LLMUsage
from openmemory_core.review_queue import CHANGE, HELD, change_of
from openmemory_core.stored_settings import ReviewLevel, ReviewPolicy
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.vectors import VectorRecord, VectorStore, keyword_vector
from openmemory_core.telemetry import stage
from openmemory_core.text.keywords import query_vector
from openmemory_ingest.conversation import Conversations, following
from openmemory_ingest.extraction import Decision, Extractor, Fact, LocalExtractor
from openmemory_ingest.extraction.changes import Candidate, may_replace, replaced, says_change
from openmemory_ingest.extraction.llm import BudgetSpent, billed_to
from openmemory_ingest.extraction.rules import FUNCTIONAL
from openmemory_ingest.instructions import instruction_reason
from openmemory_ingest.offload import text_work
from openmemory_ingest.review import (
    REVIEW_ALL,
    approve_one,
    change_held_because,
    client_metadata,
    decide,
    decision_reason,
    held_change,
    pending_note,
    stamp,
)

DELETE_BATCH = 256
#: Stored memories read per new fact when the offline path looks for the one it replaces.
REPLACE_CANDIDATES = 10
#: A longer fact (a pasted document) is not a statement that something changed, nor a cue for the
#: rest of its message: no look for it, so its keyword query (a term per word) never runs.
REPLACE_MAX_CHARS = 1000
#: How close in meaning (dense cosine) a stored memory must be for a fact that only says something
#: changed ("these days I …") to replace it; chosen on the development set (bench/README.md).
REPLACE_SIMILARITY = 0.2
#: The same for a weak cue ("now", "new", "finally"): common in any chat, so only a close memory.
WEAK_CUE_SIMILARITY = 0.5
#: The same for a fact whose *message* has a strong cue but which has none itself. Unrelated short
#: facts about the user sit at 0.28-0.32 with MiniLM ("is allergic to peanuts" / "works as a
#: nurse": 0.32), which the strong cue's 0.2 let one replace the other. 0.4 cost 2 of 45 development
#: decisions (32 -> 30, in sample); the evaluation set's 29/38 is unchanged.
MESSAGE_CUE_SIMILARITY = 0.4
__all__ = ["HELD", "Applied", "IngestService", "held_reasons", "pending_note"]


def held_reasons(message: str, facts: list[str]) -> list[str | None]:
    """Why each fact is held for review (`instructions`), or None. An instruction anywhere in the
    message holds every fact of it: the local extractor may have cut it into harmless-looking parts."""
    whole = instruction_reason(message)
    return [instruction_reason(f) or whole for f in facts]


async def vector_records(memories: list[c.Memory], dense: list[list[float]]) -> list[VectorRecord]:
    """The records to store, with their keyword vectors made in a worker thread (`text_work`):
    stemming a long text is CPU work, and the event loop also serves the gateway, search and admin."""

    def made() -> list[VectorRecord]:
        return [VectorRecord(m, v, keyword_vector(m)) for m, v in zip(memories, dense, strict=True)]

    return await text_work(sum(len(m.text) + len(m.context or "") for m in memories), made)


@dataclass
class Applied:
    """What applying one command did: events to publish and the summary for the caller."""

    events: list[c.MemoryEvent] = field(default_factory=list)
    summary: list[c.ChangeSummary] = field(default_factory=list)
    note: str | None = None

    def record_update(self, command: c.CommandBase, before: c.Memory, after: c.Memory) -> None:
        held = after.state is c.MemoryState.PENDING  # e.g. an edit that reads as an instruction
        self.summary.append(
            c.ChangeSummary(
                id=after.id, memory=after.text, event=c.ChangeKind.UPDATE,
                state=after.state if held else None, note=pending_note(after) if held else None,
            )
        )  # fmt: skip
        self._event(command, after.id, c.ChangeKind.UPDATE, before, after)

    def record(self, command: c.CommandBase, change: c.ChangeKind, memory: c.Memory, before: bool) -> None:
        held = memory.state is c.MemoryState.PENDING and change is not c.ChangeKind.DELETE
        proposed = change_of(memory) if held and change is c.ChangeKind.ADD else None
        self.summary.append(
            c.ChangeSummary(
                id=memory.id, memory=memory.text,
                # a held update or deletion is told as what it would do; its history starts with an ADD
                event=c.ChangeKind(proposed[0].upper()) if proposed else change,
                state=memory.state if held else None, note=pending_note(memory) if held else None,
            )
        )  # fmt: skip
        if change is not c.ChangeKind.NONE:
            self._event(command, memory.id, change, memory if before else None, None if before else memory)

    def _event(
        self,
        command: c.CommandBase,
        memory_id: str,
        change: c.ChangeKind,
        before: c.Memory | None,
        after: c.Memory | None,
    ) -> None:
        self.events.append(
            c.MemoryEvent(
                request_id=command.request_id, user_id=command.user_id, app=command.app,
                memory_id=memory_id, change=change, before=before, after=after,
            )
        )  # fmt: skip


EventLog = Callable[[int], Awaitable[list[tuple[int, c.MemoryEvent]]]]


class IngestService:
    def __init__(
        self,
        vectors: VectorStore,
        graph: GraphStore,
        embedder: Embedder,
        extractor: Extractor,
        similar: int = 5,
        replace_similarity: float = REPLACE_SIMILARITY,
        weak_cue_similarity: float = WEAK_CUE_SIMILARITY,
    ) -> None:
        self.replace_similarity = replace_similarity
        self.weak_cue_similarity = weak_cue_similarity
        self.similar = similar  # stored memories shown per new fact when the extractor decides updates
        self.vectors = vectors
        self.graph = graph
        self.embedder = embedder
        self.extractor = extractor
        self.analyser = LocalExtractor()  # reads texts kept verbatim (edits, imports): no model call
        self.event_log: EventLog | None = None  # the events stream, for rebuilds (set by the component)
        self.conversations = Conversations()
        self.llm_usage: LLMUsage | None = None  # daily LLM token counts and budgets (set by the component)
        #: Each user's review setting (set by the component; None: `off` for everyone).
        self.review_policy: Callable[[str], Awaitable[ReviewPolicy]] | None = None

    async def apply(self, command: c.AnyCommand) -> Applied:
        if isinstance(command, c.AddCommand):
            return await self.add(command)
        if isinstance(command, c.DeleteCommand):
            return await self.delete(command, command.memory_ids)
        if isinstance(command, c.ReembedCommand):
            return await self.reembed(command)
        if isinstance(command, c.EditCommand):
            return await self.edit(command)
        if isinstance(command, c.SetStateCommand):
            return await self.set_state(command)
        if isinstance(command, c.ImportCommand):
            return await self.import_memories(command)
        if isinstance(command, c.RebuildCommand):
            return await self.rebuild()
        if isinstance(command, c.ConsolidateCommand):
            from openmemory_ingest.consolidation import apply_consolidation  # it imports this module

            return await apply_consolidation(self.vectors, command)
        if isinstance(command, c.ReviewCommand):
            applied = Applied()
            await decide(self, command, applied)
            return applied
        return await self.delete_all(command)

    async def reembed(self, command: c.ReembedCommand, batch: int = 128) -> Applied:
        """Embed every memory of another model's collection with the current model, keeping ids and
        fields; memories already in the current collection are left as they are."""
        current = self.embedder.model_tag
        if command.from_model_tag == current:
            raise InvalidInput(f"{current} is the model in use: nothing to re-embed")
        tags = await self.vectors.model_tags()
        if command.from_model_tag not in tags:
            raise InvalidInput(
                f"no memories stored with {command.from_model_tag!r}; there are: {', '.join(tags)}"
            )
        moved = kept = 0
        offset: str | None = None
        while True:
            page, offset = await self.vectors.read_collection(command.from_model_tag, offset, batch)
            present = await self.vectors.existing([m.id for m in page]) if page else set()
            todo = [m for m in page if m.id not in present]
            kept += len(page) - len(todo)
            if todo:
                async with stage("embed"):
                    dense = await self.embedder.embed([m.text for m in todo])
                records = await vector_records(todo, dense)
                async with stage("write_vectors"):
                    await self.vectors.upsert(records)
                moved += len(todo)
            if offset is None:
                break
        return Applied(note=f"re-embedded {moved} memories from {command.from_model_tag} into {current}"
                       f" ({kept} were there already)")  # fmt: skip

    async def add(self, command: c.AddCommand) -> Applied:
        applied = Applied()
        at = command.occurred_at or command.issued_at
        # A spent LLM budget (`BudgetSpent`, checked before each call) means the local extractor
        # for the rest of the command: nothing is dropped, and the result says why.
        extractor = self.extractor
        async with stage("extract"):
            try:
                with billed_to(self.llm_usage, command.user_id):
                    facts = await extractor.extract(command.text, command.infer, at)
            except BudgetSpent as spent:
                extractor, applied.note = self.analyser, spent.note
                facts = await extractor.extract(command.text, command.infer, at)
        if not facts:
            return applied
        texts = [f.text for f in facts]
        async with stage("embed"):
            dense = await self.embedder.embed(texts)
        suspect = await text_work(len(command.text) + sum(map(len, texts)), held_reasons, command.text, texts)
        level = await self._review_level(command)
        # why each new memory is held: an instruction (whatever the setting), or the review setting
        held = [reason or (REVIEW_ALL if level == "all" else None) for reason in suspect]
        decisions = [Decision("ADD", i) for i in range(len(facts))]
        if command.infer and extractor.compares_with_stored:
            async with stage("decide"):
                try:
                    with billed_to(self.llm_usage, command.user_id):
                        decisions = await extractor.decide(facts, await self._similar(command.user_id, dense))
                except BudgetSpent as spent:
                    extractor, applied.note = self.analyser, spent.note
            # a suspect fact never rewrites a stored memory: it is added beside it, pending
            decisions = [
                Decision("ADD", d.fact) if d.event == "UPDATE" and suspect[d.fact] else d for d in decisions
            ]
        replaces: dict[int, str] = {}
        if command.infer and not extractor.compares_with_stored:
            async with stage("decide"):
                replaces = await self._replaces(command.user_id, facts, dense)
            replaces = {i: old for i, old in replaces.items() if not held[i]}
        records: list[VectorRecord] = []
        superseded: dict[str, str] = {}
        before = self.conversations.before(command)
        for decision in decisions:
            fact, vector = facts[decision.fact], dense[decision.fact]
            if decision.event == "ADD":
                record = await self._new_record(
                    command, decision.fact, fact, vector, applied, before, held[decision.fact]
                )
                if record is not None:
                    records.append(record)
                    if decision.fact in replaces:
                        superseded[replaces[decision.fact]] = record.memory.id
            elif decision.event == "NONE":
                for kept in await self.vectors.get(command.user_id, [decision.target or ""]):
                    applied.record(command, c.ChangeKind.NONE, kept, before=False)
            elif reason := change_held_because(decision.event, level, suspect[decision.fact]):
                if (record := await self._held_change(command, decision, fact, vector, reason)) is not None:
                    applied.record(command, c.ChangeKind.ADD, record.memory, before=False)
                    records.append(record)
            elif decision.event == "UPDATE":
                await self._update(command, decision, fact, applied)
            else:
                done = await self.delete(command, [decision.target or ""])
                applied.events.extend(done.events)
                applied.summary.extend(done.summary)
        async with stage("write_vectors"):
            await self.vectors.upsert(records)
        if records:
            self.conversations.added(command, before, records[-1].memory)
        async with stage("write_graph"):
            # a pending memory stays out of the graph (it would close the user's relations) until approved
            records = [r for r in records if r.memory.state is not c.MemoryState.PENDING]
            for record in records:
                for old in await self.graph.close_superseded(record.memory, FUNCTIONAL):
                    superseded[old] = record.memory.id
                await self.graph.add_memory(record.memory)
            for record in records:
                olds = [old for old, new in superseded.items() if new == record.memory.id]
                await self.graph.replace(record.memory, olds)
        await self._mark(command, superseded, applied)
        return applied

    async def _review_level(self, command: c.AddCommand) -> ReviewLevel:
        """The user's review setting for the app that sent the command."""
        if self.review_policy is None:
            return "off"
        return (await self.review_policy(command.user_id)).level_for(command.app)

    async def _replaces(self, user_id: str, facts: list[Fact], dense: list[list[float]]) -> dict[int, str]:
        """The offline path's change detection (`extraction.changes`): for each new fact that fills no
        functional relation (the graph replaces those), the current memory it replaces, if any."""
        found: dict[int, str] = {}
        # "the move is done!! writing this from our new flat in Bilbao": a cue speaks for its message
        cued = any(says_change(f.text) for f in facts if len(f.text) <= REPLACE_MAX_CHARS)
        for index, (fact, vector) in enumerate(zip(facts, dense, strict=True)):
            if len(fact.text) > REPLACE_MAX_CHARS or any(r.type in FUNCTIONAL for r in fact.relations):
                continue
            if not (cued or may_replace(fact.text)):
                continue
            by_meaning = await self.vectors.dense_search(user_id, vector, REPLACE_CANDIDATES)
            by_words = await self.vectors.keyword_search(user_id, query_vector(fact.text), REPLACE_CANDIDATES)
            candidates: dict[str, Candidate] = {}
            for hit, similarity in [(h, h.score) for h in by_meaning] + [(h, 0.0) for h in by_words]:
                memory = hit.memory
                if memory.superseded_by or memory.state is not c.MemoryState.ACTIVE:
                    continue
                if memory.id not in found.values():
                    candidates.setdefault(memory.id, Candidate(memory.id, memory.text, similarity))
            target = replaced(
                fact.text,
                list(candidates.values()),
                self.replace_similarity,
                cued,
                self.weak_cue_similarity,
                MESSAGE_CUE_SIMILARITY,
            )
            if target is not None:
                found[index] = target
        return found

    async def _similar(self, user_id: str, vectors: list[list[float]]) -> list[c.Memory]:
        """The user's stored memories closest to any of the new facts, for the update decision."""
        found: dict[str, c.Memory] = {}
        for vector in vectors:
            for hit in await self.vectors.dense_search(user_id, vector, self.similar):
                found.setdefault(hit.memory.id, hit.memory)
        return list(found.values())

    def _memory(self, command: c.AddCommand, memory_id: str, fact: Fact, text: str) -> c.Memory:
        refers_to = (
            datetime.combine(fact.refers_to, time(12), tzinfo=UTC) if fact.refers_to else command.occurred_at
        )
        return c.Memory(
            id=memory_id,
            user_id=command.user_id,
            app=command.app,
            text=text,
            categories=fact.categories,
            entities=fact.entities,
            entity_kinds=fact.entity_kinds,
            relations=fact.relations,
            created_at=command.issued_at,
            updated_at=command.issued_at,
            occurred_at=refers_to,
            metadata=client_metadata(command.metadata),
            content_hash=c.content_hash(command.user_id, text),
            request_id=command.request_id,
        )

    async def _new_record(
        self,
        command: c.AddCommand,
        index: int,
        fact: Fact,
        vector: list[float],
        applied: Applied,
        before: c.Memory | None,
        held: str | None = None,
    ) -> VectorRecord | None:
        memory = self._memory(command, c.memory_id_for(command.request_id, index), fact, fact.text)
        memory = following(memory, before)
        if held:
            memory = memory.model_copy(
                update={"state": c.MemoryState.PENDING, "metadata": {**memory.metadata, HELD: held}}
            )
        existing = await self.vectors.find_by_hash(command.user_id, memory.content_hash)
        if existing is not None and existing.id != memory.id:
            applied.record(command, c.ChangeKind.NONE, existing, before=False)
            return None
        applied.record(command, c.ChangeKind.ADD, memory, before=False)
        (record,) = await vector_records([memory], [vector])
        return record

    async def _held_change(
        self, command: c.AddCommand, decision: Decision, fact: Fact, vector: list[float], reason: str
    ) -> VectorRecord | None:
        """An LLM UPDATE or DELETE held for review (`review`): a pending memory that names the stored
        one, which stays as it is. A held update holds the new text; a held deletion the stored
        text, under a hash of its own (it is no duplicate of the memory it would delete)."""
        found = await self.vectors.get(command.user_id, [decision.target or ""])
        if not found:
            return None
        (old,) = found
        memory_id = c.memory_id_for(command.request_id, decision.fact)
        if decision.event == "UPDATE":
            memory = self._memory(command, memory_id, fact, (decision.text or fact.text).strip())
            memory = held_change(memory, "update", old.id, reason)
        else:
            memory = old.model_copy(
                update={
                    "id": memory_id, "app": command.app, "created_at": command.issued_at,
                    "updated_at": command.issued_at, "request_id": command.request_id, "superseded_by": None,
                    "previous": None, "context": None, "metadata": client_metadata(old.metadata),
                    "content_hash": c.content_hash(command.user_id, f"{old.text}\x00delete {old.id}"),
                }
            )  # fmt: skip
            memory = held_change(memory, "delete", old.id, reason)
        (record,) = await vector_records([memory], [vector])
        return record

    async def _update(self, command: c.AddCommand, decision: Decision, fact: Fact, applied: Applied) -> None:
        """Rewrite a stored memory in place: new text, vectors, entities and relations; same id."""
        found = await self.vectors.get(command.user_id, [decision.target or ""])
        if not found:
            return
        old = found[0]
        text = (decision.text or fact.text).strip()
        new = self._memory(command, old.id, fact, text).model_copy(
            update={
                "app": old.app,
                "created_at": old.created_at,
                "request_id": old.request_id,
                "previous": old.previous,
                "context": old.context,
            }
        )
        await self._rewrite(command, old, new, applied)

    async def _rewrite(self, command: c.CommandBase, old: c.Memory, new: c.Memory, applied: Applied) -> None:
        """Store a new version of a memory: vectors, then its graph part, which may close relations
        the new text replaces (a move closes the old LIVES_IN) and reopen what the old one closed."""
        (vector,) = await self.embedder.embed([new.text])
        async with stage("write_vectors"):
            await self.vectors.upsert(await vector_records([new], [vector]))
        async with stage("write_graph"):
            kept = await self.graph.replaced_by(command.user_id, [old.id])  # stays replaced
            superseded: dict[str, str | None] = dict.fromkeys(
                await self.graph.delete_memories(command.user_id, [old.id])
            )
            if new.state is c.MemoryState.PENDING:  # held: out of the graph, replacing nothing
                superseded.update(dict.fromkeys(kept, None))
                kept = []
        if new.state is not c.MemoryState.PENDING:
            async with stage("write_graph"):
                for closed in await self.graph.close_superseded(new, FUNCTIONAL):
                    superseded[closed] = new.id
                await self.graph.add_memory(new)
                await self.graph.replace(new, kept)
                superseded.update(dict.fromkeys(kept, new.id))
        superseded.pop(new.id, None)
        applied.record_update(command, old, new)
        await self._mark(command, superseded, applied)

    async def edit(self, command: c.EditCommand) -> Applied:
        """A hand edit: the new text is kept verbatim and analysed again (entities, relations,
        categories, date), then stored under the same id. A text that reads as an instruction to an
        assistant (`instructions`) makes the memory pending, as it would a new one."""
        applied = Applied()
        found = await self.vectors.get(command.user_id, [command.memory_id])
        if not found:
            raise InvalidInput(f"no such memory: {command.memory_id}")
        old = found[0]
        text = command.text.strip()
        if not text:
            raise InvalidInput("the new text is empty")
        if text == old.text:
            return applied
        fact = await self._analyse(text, old.when)
        new = old.model_copy(
            update={
                "text": text, "categories": fact.categories or old.categories, "entities": fact.entities,
                "entity_kinds": fact.entity_kinds, "relations": fact.relations,
                "updated_at": command.issued_at, "content_hash": c.content_hash(command.user_id, text),
            }
        )  # fmt: skip
        if (reason := await asyncio.to_thread(instruction_reason, text)) and change_of(old) is None:
            new = new.model_copy(
                update={"state": c.MemoryState.PENDING, "metadata": {**new.metadata, HELD: reason}}
            )
        await self._rewrite(command, old, new, applied)
        return applied

    async def _analyse(self, text: str, at: datetime) -> Fact:
        """Entities, relations and categories of a text that is kept as it is."""
        facts = await self.analyser.extract(text, True, at)
        entities = list(dict.fromkeys(e for f in facts for e in f.entities))
        return Fact(
            text,
            entities=entities,
            categories=list(dict.fromkeys(k for f in facts for k in f.categories)),
            relations=list(dict.fromkeys(r for f in facts for r in f.relations)),
            entity_kinds={k: v for f in facts for k, v in f.entity_kinds.items()},
        )

    async def set_state(self, command: c.SetStateCommand) -> Applied:
        """Pause, archive or make active. A pending memory the user approves (or pauses, or
        archives) loses its held reason (the event keeps it) and joins the graph; making a held
        update or deletion active applies it (`review`), and pausing or archiving one does nothing."""
        applied = Applied()
        for old in await self.vectors.get(command.user_id, command.memory_ids):
            if old.state == command.state:
                continue
            first = len(applied.events)
            if old.state is c.MemoryState.PENDING and change_of(old) is not None:
                if command.state is c.MemoryState.ACTIVE:
                    await approve_one(self, command, old, applied)
            elif old.state is c.MemoryState.PENDING:
                metadata = {k: v for k, v in old.metadata.items() if k != HELD}
                await self.activate(command, old, metadata, applied, command.state)
            else:
                new = old.model_copy(update={"state": command.state, "updated_at": command.issued_at})
                await self.vectors.set_payload(new)
                applied.record_update(command, old, new)
            if old.state is c.MemoryState.PENDING and command.state is c.MemoryState.ACTIVE:
                stamp(applied, first, decision_reason(command, True, old.metadata.get(HELD)))
        return applied

    async def activate(
        self,
        command: c.CommandBase,
        old: c.Memory,
        metadata: dict[str, object],
        applied: Applied,
        state: c.MemoryState = c.MemoryState.ACTIVE,
    ) -> None:
        """A pending memory leaves the review queue: its metadata without the held reason (the
        event keeps it), in the graph, closing what its relations replace."""
        new = old.model_copy(update={"state": state, "updated_at": command.issued_at, "metadata": metadata})
        await self.vectors.set_payload(new)
        applied.record_update(command, old, new)
        superseded = dict.fromkeys(await self.graph.close_superseded(new, FUNCTIONAL), new.id)
        await self.graph.add_memory(new)
        await self._mark(command, superseded, applied)

    async def import_memories(self, command: c.ImportCommand) -> Applied:
        """Take in exported memories verbatim. An id is kept unless another user's memory has it;
        then, as for a taken id, one derived from the command is used, so a redelivery is a no-op.
        A text that reads as an instruction to an assistant is held pending, as a new one would be;
        a held deletion of the exporting system (`review`) is left out: it names a memory there."""
        applied = Applied()
        suspect = await asyncio.to_thread(lambda: [instruction_reason(m.text) for m in command.memories])
        wanted = [m.id for m in command.memories if m.id and c.is_memory_id(m.id)]
        taken = await self.vectors.existing(wanted)
        own = {m.id for m in await self.vectors.get(command.user_id, list(taken))}
        memories: list[c.Memory] = []
        earlier = [m.previous for m in command.memories if m.previous and c.is_memory_id(m.previous)]
        # an export's id -> the id it is stored under: this user's (an earlier batch), then this batch's
        renamed = {m.id: m.id for m in await self.vectors.get(command.user_id, earlier)}
        for index, item in enumerate(command.memories):
            change = item.metadata.get(CHANGE)
            if isinstance(change, dict) and change.get("kind") == "delete":
                continue
            state, metadata = item.state, client_metadata(item.metadata)
            if suspect[index] and state is not c.MemoryState.DELETED:
                state, metadata[HELD] = c.MemoryState.PENDING, suspect[index]
            elif state is c.MemoryState.PENDING:
                metadata[HELD] = item.metadata.get(HELD) or "it was pending review where it was exported"
            memory_id = item.id if item.id in own or (item.id in wanted and item.id not in taken) else None
            memory_id = memory_id or c.memory_id_for(command.request_id, index)
            if item.id:
                renamed[item.id] = memory_id
            at = item.occurred_at or item.created_at or command.issued_at
            fact = await self._analyse(item.text, at)
            created = item.created_at or command.issued_at
            memories.append(
                c.Memory(
                    id=memory_id, user_id=command.user_id, app=item.app, text=item.text, state=state,
                    categories=item.categories if item.categories is not None else fact.categories,
                    entities=fact.entities, entity_kinds=fact.entity_kinds, relations=fact.relations,
                    created_at=created, updated_at=item.updated_at or created, occurred_at=item.occurred_at,
                    metadata=metadata, content_hash=c.content_hash(command.user_id, item.text),
                    request_id=command.request_id, context=item.context,
                    previous=renamed.get(item.previous) if item.previous else None,
                )
            )  # fmt: skip
        if item_states := [m for m in memories if m.state is c.MemoryState.DELETED]:
            memories = [m for m in memories if m not in item_states]  # an export's deleted rows stay out
        if not memories:
            return applied
        async with stage("embed"):
            dense = await self.embedder.embed([m.text for m in memories])
        async with stage("write_vectors"):
            await self.vectors.upsert(await vector_records(memories, dense))
        async with stage("write_graph"):
            await self.graph.delete_memories(command.user_id, [m.id for m in memories])
            for memory in memories:
                if memory.state is not c.MemoryState.PENDING:
                    await self.graph.add_memory(memory)
        for memory in memories:
            applied.record(command, c.ChangeKind.ADD, memory, before=False)
        return applied

    async def _mark(
        self, command: c.CommandBase, superseded_by: Mapping[str, str | None], applied: Applied
    ) -> None:
        """Record on each memory which newer memory replaced its fact (None: replaced no more)."""
        olds = await self.vectors.get(command.user_id, list(superseded_by))
        for old in olds:
            new_value = superseded_by[old.id]
            if old.superseded_by == new_value:
                continue
            updated = old.model_copy(update={"superseded_by": new_value, "updated_at": command.issued_at})
            await self.vectors.set_payload(updated)
            applied.record_update(command, old, updated)

    async def delete(self, command: c.CommandBase, memory_ids: list[str]) -> Applied:
        applied = Applied()
        memories = await self.vectors.get(command.user_id, memory_ids)
        ids = [m.id for m in memories]
        async with stage("write_vectors"):
            await self.vectors.delete(command.user_id, ids)
        async with stage("write_graph"):
            reopened = await self.graph.delete_memories(command.user_id, ids)
        for memory in memories:
            applied.record(command, c.ChangeKind.DELETE, memory, before=True)
        await self._mark(command, dict.fromkeys(reopened), applied)
        return applied

    async def rebuild(self, batch: int = 128) -> Applied:
        """Recreate the vectors and the graph of every user from the events stream: each memory as
        its last event left it (deleted ones stay out), re-embedded with the current model, and the
        graph rebuilt in the order the memories refer to, so supersession comes out as before."""
        if self.event_log is None:
            raise InvalidInput("rebuild needs the events stream")
        latest: dict[str, c.Memory | None] = {}
        users: set[str] = set()
        sequence, events = 0, 0
        while page := await self.event_log(sequence):
            sequence = page[-1][0]
            for _, event in page:
                events += 1
                users.add(event.user_id)
                if event.change is c.ChangeKind.DELETE:
                    latest[event.memory_id] = None
                elif event.change in (c.ChangeKind.ADD, c.ChangeKind.UPDATE) and event.after is not None:
                    latest[event.memory_id] = event.after
        for user in users:
            while leftovers := await self.vectors.list_memories(user, DELETE_BATCH, active_only=False):
                await self.vectors.delete(user, [m.id for m in leftovers])
            await self.graph.clear_user(user)
        memories = sorted(
            (m for m in latest.values() if m is not None),
            key=lambda m: (m.when.timestamp(), m.created_at.timestamp(), m.id),
        )
        for start in range(0, len(memories), batch):
            chunk = memories[start : start + batch]
            dense = await self.embedder.embed([m.text for m in chunk])
            await self.vectors.upsert(await vector_records(chunk, dense))
        for memory in memories:
            if memory.state is not c.MemoryState.PENDING:
                await self.graph.close_superseded(memory, FUNCTIONAL)
                await self.graph.add_memory(memory)
        by_id = {m.id: m for m in memories}
        for memory in memories:  # what replaced it without a functional relation, as before
            if memory.superseded_by in by_id:
                await self.graph.replace(by_id[memory.superseded_by], [memory.id])
        return Applied(
            note=f"rebuilt {len(memories)} memories of {len(users)} users from {events} events "
            f"with {self.embedder.model_tag}"
        )

    async def delete_all(self, command: c.DeleteAllCommand) -> Applied:
        applied = Applied()
        while True:
            batch = await self.vectors.list_memories(command.user_id, DELETE_BATCH, active_only=False)
            if not batch:
                return applied
            done = await self.delete(command, [m.id for m in batch])
            applied.events.extend(done.events)
            applied.summary.extend(done.summary)
