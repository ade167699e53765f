"""Pages of a user's memories, newest first, and the opaque cursor that leads from one to the next.

A cursor is a position, not a permission: every page is read with the asking user's filter, so no
cursor can reach another user's memories. It is still bound to its user (a hash over the user id
and its content), so a cursor from another user, or one changed by hand, is refused with a clear
message rather than silently giving a wrong page.

The position is keyset-style, since the stores order by creation time and have no offset then:
the creation time of the page's last memory, and the ids of the memories at exactly that time that
were already shown (several memories of one add share their creation time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput
from openmemory_core.stores.vectors import VectorStore

BAD_CURSOR = (
    "this cursor is not valid for this user (changed, or from another user or key): "
    "list again without a cursor"
)


@dataclass(frozen=True)
class Position:
    before: float  # the creation time of the last memory shown (a timestamp)
    seen: frozenset[str]  # the ids shown already whose creation time is exactly `before`


def _check(user_id: str, body: str) -> str:
    return hashlib.sha256(f"openmemory-cursor\n{user_id}\n{body}".encode()).hexdigest()[:24]


def encode_cursor(user_id: str, position: Position) -> str:
    body = json.dumps({"v": 1, "t": position.before, "s": sorted(position.seen)}, separators=(",", ":"))
    packed = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{packed}.{_check(user_id, body)}"


def decode_cursor(user_id: str, cursor: str) -> Position:
    """The position `cursor` names; `InvalidInput` when it is not one of this user's cursors."""
    packed, _, check = cursor.strip().partition(".")
    try:
        body = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(BAD_CURSOR) from exc
    if not hmac.compare_digest(check, _check(user_id, body)):
        raise InvalidInput(BAD_CURSOR)
    try:
        fields = json.loads(body)
        before = float(fields["t"])
        seen = frozenset(str(i) for i in fields["s"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(BAD_CURSOR) from exc
    return Position(before, seen)


def created(memory: c.Memory) -> float:
    """The creation time as the stores order by it (`created_ts` in the payload)."""
    return memory.created_at.timestamp()


async def list_page(vectors: VectorStore, request: c.ListRequest) -> c.ListResponse:
    """One page of `request.limit` active memories of the user, newest first, after its cursor."""
    position = decode_cursor(request.user_id, request.offset) if request.offset else None
    seen = position.seen if position else frozenset()
    # Enough that, after dropping the ones already shown, one more than a page is left when there is one.
    wanted = request.limit + len(seen) + 1
    found = await vectors.list_memories(
        request.user_id,
        wanted,
        filters=request.filters,
        before=position.before if position else None,
    )
    fresh = [m for m in found if m.id not in seen]
    page = fresh[: request.limit]
    if len(fresh) <= request.limit or not page:
        return c.ListResponse(memories=page)
    last = created(page[-1])
    shown = {m.id for m in page if created(m) == last}
    if position is not None and position.before == last:
        shown |= seen
    return c.ListResponse(
        memories=page, next_offset=encode_cursor(request.user_id, Position(last, frozenset(shown)))
    )
