"""How a change held for the user's review is written on a memory (ingest holds and applies them,
admin lists them): a `pending` memory whose `metadata.held` says why, and, for a held update or
deletion of a stored memory, `metadata.review_change` = {"kind": "update" | "delete", "target": id}."""

from __future__ import annotations

from typing import Literal

from openmemory_core import contracts as c

#: The metadata key that holds why a memory is `pending` (removed when the user approves it).
HELD = "held"
#: The metadata key of a held update or deletion: {"kind": "update" | "delete", "target": <id>}.
CHANGE = "review_change"
#: Keys only ingest writes: taken out of what a client sends as metadata.
RESERVED = frozenset({HELD, CHANGE})

Kind = Literal["new", "update", "delete"]


def change_of(memory: c.Memory) -> tuple[Literal["update", "delete"], str] | None:
    """The held update or deletion a pending memory stands for, and the memory it names."""
    change = memory.metadata.get(CHANGE)
    if memory.state is not c.MemoryState.PENDING or not isinstance(change, dict):
        return None
    kind, target = change.get("kind"), change.get("target")
    if kind not in ("update", "delete") or not isinstance(target, str) or not c.is_memory_id(target):
        return None
    return kind, c.canonical_id(target)


def kind_of(memory: c.Memory) -> Kind:
    """What approving a pending memory does: make it active (`new`), or apply its change."""
    change = change_of(memory)
    return change[0] if change else "new"
