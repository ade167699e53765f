"""Commands of the caller's user that ingest could not apply: the list with the reason, retry
(send again) and discard. Only the user's own commands are ever shown or touched."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from openmemory_admin.deps import AdminContext, AdminReader, AdminWriter, Ctx
from openmemory_core import contracts as c
from openmemory_core.errors import NotFound

router = APIRouter(tags=["dead letters"])


class DeadLetterView(BaseModel):
    sequence: int
    request_id: str
    kind: str
    error: str
    at: datetime
    payload: dict[str, Any] | str


def _letters_of(letters: list[tuple[int, c.DeadLetter]], principal: c.Principal) -> list[DeadLetterView]:
    """The caller's own parked commands (a command names its user); never another user's."""
    views = []
    for sequence, letter in letters:
        try:
            payload = json.loads(letter.payload)
            command = payload.get("command", {})
        except (ValueError, AttributeError):
            continue
        if not isinstance(command, dict) or command.get("user_id") != principal.user_id:
            continue
        views.append(
            DeadLetterView(
                sequence=sequence, request_id=letter.request_id, kind=str(command.get("kind", "?")),
                error=letter.error, at=letter.at, payload=payload,
            )
        )  # fmt: skip
    return views


async def _letter(ctx: AdminContext, principal: c.Principal, sequence: int) -> c.DeadLetter:
    for seq, letter in await ctx.bus.dead_letters():
        if seq == sequence and _letters_of([(seq, letter)], principal):
            return letter
    raise NotFound(f"no dead letter {sequence} for this user")


@router.get("/dead-letters")
async def dead_letters(principal: AdminReader, ctx: Ctx) -> list[DeadLetterView]:
    """Commands of this user that could not be applied, with the reason."""
    return _letters_of(await ctx.bus.dead_letters(), principal)


@router.post("/dead-letters/{sequence}/retry")
async def retry(sequence: int, principal: AdminWriter, ctx: Ctx) -> dict[str, str]:
    """Send the command to ingest again and take it off the list."""
    letter = await _letter(ctx, principal, sequence)
    await ctx.bus.retry_dead_letter(sequence, letter)
    return {"request_id": letter.request_id, "status": "resent"}


@router.delete("/dead-letters/{sequence}", status_code=204)
async def discard(sequence: int, principal: AdminWriter, ctx: Ctx) -> None:
    await _letter(ctx, principal, sequence)
    await ctx.bus.discard_dead_letter(sequence)
