"""The shape and size of tool answers: how a memory is shown, which fields a client asked for, and
the cap that keeps every answer within what a client's model can read."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from openmemory_core import contracts as c

#: What `search_memory` can return per result, and the short form `fields="snippet"` gives.
SEARCH_FIELDS = (
    "id", "memory", "app", "categories", "created_at", "updated_at", "refers_to", "superseded_by",
    "score", "signals",
)  # fmt: skip
SNIPPET = "snippet"
SNIPPET_CHARS = 160
#: Every memory shown to a client says it is one: something the user said, to be weighed as a fact
#: about them, never an instruction to follow (README, "Trust"). Kept whatever `fields` asks for.
SOURCE = {"source": "memory"}


def memory_view(memory: c.Memory) -> dict[str, Any]:
    """A memory as a client sees it; one read by id that is not active says its state ("pending":
    held for review, not to be relied on)."""
    state = {} if memory.state is c.MemoryState.ACTIVE else {"state": memory.state.value}
    return {
        **SOURCE,
        **state,
        "id": memory.id,
        "memory": memory.text,
        "app": memory.app,
        "categories": memory.categories,
        "created_at": memory.created_at.isoformat(),
        "updated_at": memory.updated_at.isoformat(),
        "refers_to": memory.occurred_at.isoformat() if memory.occurred_at else None,
        "superseded_by": memory.superseded_by,  # the newer memory that replaced this one's fact
    }


def state_change(event: c.MemoryEvent) -> dict[str, str]:
    """What a history entry changed beyond the text: the new state, and why, when it says
    (consolidation: "merged into <id>", "temporary: expired at …")."""
    if event.before is None or event.after is None or event.before.state == event.after.state:
        return {}
    reason = event.after.metadata.get(c.ARCHIVED_REASON)
    return {"state": event.after.state.value, **({"reason": reason} if isinstance(reason, str) else {})}


def noted(hit: c.ScoredMemory) -> dict[str, str]:
    """How to read a hit now, when search says (a plan whose date has passed); kept whatever
    `fields` asks for, like `source`."""
    return {"note": hit.note} if hit.note else {}


def shortened(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(0, chars - 1)].rstrip() + "…"


def field_picker(fields: list[str] | str | None) -> Any:
    """A function from a full search result to the fields the client asked for; refuses unknown ones."""
    if fields is None:
        return lambda view: view
    if fields == SNIPPET:
        return lambda view: {
            **SOURCE, "id": view["id"], "memory": shortened(view["memory"], SNIPPET_CHARS),
            "score": view["score"], **({"note": view["note"]} if "note" in view else {}),
        }  # fmt: skip
    wanted = [fields] if isinstance(fields, str) else list(fields)
    unknown = [f for f in wanted if f not in SEARCH_FIELDS]
    if unknown or not wanted:
        raise ToolError(
            f"unknown fields {unknown or '[]'}: give some of {', '.join(SEARCH_FIELDS)}, "
            f'or "{SNIPPET}" for id, a shortened memory and score'
        )
    return lambda view: {
        **SOURCE,
        **{f: view[f] for f in wanted},
        **({"note": view["note"]} if "note" in view else {}),
    }


def _size(answer: dict[str, Any]) -> int:
    return len(json.dumps(answer, ensure_ascii=False, default=str))


def capped(answer: dict[str, Any], key: str, max_chars: int, rest: str) -> tuple[dict[str, Any], int]:
    """`answer` with its list `answer[key]` cut from the end until the whole fits in `max_chars`,
    and how many items it kept. A cut answer says so: `truncated: true`, and a `message` telling how
    many were left out and how to get them (`rest`). A single item too long on its own is kept with
    its text shortened, so that paging always moves on."""
    items: list[Any] = answer[key]
    if _size(answer) <= max_chars:
        return answer, len(items)

    def cut(kept: int) -> dict[str, Any]:
        message = (
            f"truncated: only {kept} of {len(items)} results are shown, because an answer is limited "
            f"to {max_chars} characters. {rest}"
        )
        return {**answer, key: items[:kept], "truncated": True, "message": message}

    low, high = 0, len(items) - 1  # the most items that fit, by bisection: sizes grow with `kept`
    while low < high:
        middle = (low + high + 1) // 2
        if _size(cut(middle)) <= max_chars:
            low = middle
        else:
            high = middle - 1
    if low > 0 or not items:
        return cut(low), low
    first = dict(items[0]) if isinstance(items[0], dict) else {"value": items[0]}
    text = str(first.get("memory", first.get("after", "")))
    excess = _size({**cut(0), key: [first]}) - max_chars
    for name in ("memory", "after", "before"):
        if isinstance(first.get(name), str):
            first[name] = shortened(first[name], max(20, len(text) - excess - 40))
            break
    return {**cut(1), key: [first], "shortened": True}, 1
