"""The review queue, ingest's side: changes held for the user's approval, and the user's decisions.

A held change is a memory in the `pending` state, with why in `metadata.held`. Search serves
active memories only, so nothing held is served. Three kinds (`kind_of`):

- `new`: a new memory, held because it reads as an instruction to an assistant (`instructions`),
  or because the user's review setting for the app is `all`;
- `update`: an LLM extractor's UPDATE of a stored memory, held under `llm-changes`: the new text is a
  pending memory of its own whose `metadata.review_change` names the memory it would replace; the
  stored memory stays as it was, and served, until the user decides;
- `delete`: an LLM DELETE held the same way: a pending memory with the stored memory's text, whose
  `review_change` names it.

Approving applies the change exactly as it would have been applied without review (a new memory
becomes active and joins the graph; an update rewrites the stored memory in place, graph and
supersession included, and the pending one is deleted; a deletion deletes the stored memory and the
pending one). Rejecting deletes the pending memory. Every decision's events carry a `reason` that
says who decided and why it had been held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from openmemory_core import contracts as c
from openmemory_core.review_queue import CHANGE, HELD, RESERVED, change_of

if TYPE_CHECKING:
    from openmemory_ingest.service import Applied, IngestService

REVIEW_ALL = "review: all (every new memory from this app waits for the user's approval)"
LLM_UPDATE = "review: llm-changes (the model decided to replace a stored memory)"
LLM_DELETE = "review: llm-changes (the model decided to delete a stored memory)"


def client_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A client's metadata without the keys that mean something to the review queue: a client
    must not make a memory look held, or make approving it change another memory."""
    return {k: v for k, v in metadata.items() if k not in RESERVED}


def change_held_because(event: str, level: str, suspect: str | None) -> str | None:
    """Why an LLM decision on a stored memory waits for review instead of being applied (None: it
    is applied). An UPDATE of a suspect fact is made an ADD beside the stored memory before this."""
    if event == "UPDATE" and level != "off":
        return LLM_UPDATE
    if event == "DELETE" and (suspect or level != "off"):
        return suspect or LLM_DELETE
    return None


def held_change(memory: c.Memory, kind: Literal["update", "delete"], target: str, reason: str) -> c.Memory:
    """`memory` as the pending stand-in of an update or deletion of `target`."""
    metadata = {**memory.metadata, HELD: reason, CHANGE: {"kind": kind, "target": target}}
    return memory.model_copy(update={"state": c.MemoryState.PENDING, "metadata": metadata})


def pending_note(memory: c.Memory) -> str:
    """What the MCP client is told about a held change (the add's result)."""
    reason = str(memory.metadata.get(HELD) or "it reads as an instruction to an assistant")
    said = f"pending {reason}" if reason.startswith("review: ") else f"pending review: {reason}"
    change = change_of(memory)
    if change is None:
        return f"{said}. It is not served to any app until the user approves it in the OpenMemory dashboard."
    verb = "replace" if change[0] == "update" else "delete"
    return (
        f"{said}. It would {verb} memory {change[1]}, which stays as it is, and served, until the user "
        "approves the change in the OpenMemory dashboard."
    )


def decision_reason(command: c.CommandBase, approved: bool, held: object) -> str:
    """Who decided and why the change had been held: the `reason` of the decision's events."""
    decided = "approved" if approved else "rejected"
    why = f"; it was held because {held}" if held else ""
    return f"{decided} in review by the user (app {command.app!r}){why}"


async def decide(service: IngestService, command: c.ReviewCommand, applied: Applied) -> None:
    """Apply the user's decision to each of the held changes named (the user's own, still pending;
    anything else is passed over, so a redelivered decision changes nothing)."""
    approve = command.decision == "approve"
    for held in await service.vectors.get(command.user_id, command.memory_ids):
        if held.state is not c.MemoryState.PENDING:
            continue
        first = len(applied.events)
        if approve:
            await approve_one(service, command, held, applied)
        else:
            done = await service.delete(command, [held.id])
            applied.events.extend(done.events)
            applied.summary.extend(done.summary)
        stamp(applied, first, decision_reason(command, approve, held.metadata.get(HELD)))


def stamp(applied: Applied, first: int, reason: str) -> None:
    """Give the events recorded since `first` the decision's reason."""
    for event in applied.events[first:]:
        event.reason = reason


async def approve_one(
    service: IngestService, command: c.CommandBase, held: c.Memory, applied: Applied
) -> None:
    """Apply one held change as it would have been applied without review."""
    change = change_of(held)
    metadata = {k: v for k, v in held.metadata.items() if k not in RESERVED}
    targets = await service.vectors.get(command.user_id, [change[1]]) if change else []
    if change is None or (change[0] == "update" and not targets):
        # a new memory; or an update whose memory is gone meanwhile: the model's fact is kept as new
        await service.activate(command, held, metadata, applied)
        return
    if change[0] == "delete":
        done = await service.delete(command, [*(t.id for t in targets), held.id])
        applied.events.extend(done.events)
        applied.summary.extend(done.summary)
        return
    (target,) = targets
    # what `IngestService._update` writes: the stored memory's id, app, creation and conversation links
    new = target.model_copy(
        update={
            "text": held.text, "state": c.MemoryState.ACTIVE, "categories": held.categories,
            "entities": held.entities, "entity_kinds": held.entity_kinds, "relations": held.relations,
            "occurred_at": held.occurred_at, "updated_at": command.issued_at, "metadata": metadata,
            "content_hash": held.content_hash, "superseded_by": None,
        }
    )  # fmt: skip
    await service._rewrite(command, target, new, applied)
    done = await service.delete(command, [held.id])
    applied.events.extend(done.events)
    applied.summary.extend(done.summary)
