"""The review queue: what waits for the caller's approval, the decisions, and the setting.

A held change is a pending memory (`openmemory_core.review_queue`): a new memory, or an LLM update
or deletion of a stored one. Approve and reject go to ingest as a `ReviewCommand`, like every
change; ingest applies them and records each decision as an event with who decided and why it had
been held. All of it is the caller's own user, and needs the `admin` scope: review is the user's
oversight of their apps, so an app's read/write key cannot approve what it wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from openmemory_admin.deps import Admin, AdminContext, CommandOutcome, Ctx, run_command
from openmemory_core import contracts as c
from openmemory_core import stored_settings
from openmemory_core.errors import InvalidInput, NotFound
from openmemory_core.review_queue import HELD, Kind, change_of, kind_of

router = APIRouter(tags=["review"])

DEFAULT_REASON = "it reads as an instruction to an assistant"


class ReviewItem(BaseModel):
    """One held change: what it is, which app sent it, why it waits, and what approving does."""

    id: str
    kind: Kind  # new: a new memory; update / delete: a change to the stored memory `target`
    text: str  # the new memory's text; for a deletion, the text of the memory it deletes
    app: str
    reason: str
    created_at: datetime
    target: str | None = None
    target_text: str | None = None  # the stored memory's text now; None for `new`, or when it is gone


class ReviewPage(BaseModel):
    items: list[ReviewItem]
    total: int
    page: int
    page_size: int


class Decision(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=c.MAX_REVIEW_IDS)


async def _pending(ctx: AdminContext, principal: c.Principal, ids: list[str]) -> list[str]:
    """The ids, if every one is a pending memory of the caller's; otherwise nothing is sent."""
    ids = c.canonical_ids(ids)
    found = await ctx.ask(c.Query.GET, c.GetRequest(user_id=principal.user_id, memory_ids=ids), c.GetResponse)
    if found.missing:
        raise NotFound(f"no such memories: {', '.join(found.missing[:10])}; nothing was changed")
    decided = [m.id for m in found.memories if m.state is not c.MemoryState.PENDING]
    if decided:
        raise InvalidInput(f"not waiting for review: {', '.join(decided[:10])}; nothing was changed")
    return ids


async def _decide(
    ctx: AdminContext, principal: c.Principal, ids: list[str], decision: Literal["approve", "reject"]
) -> CommandOutcome:
    command = c.ReviewCommand(
        user_id=principal.user_id, app=principal.app, memory_ids=await _pending(ctx, principal, ids),
        decision=decision,
    )  # fmt: skip
    return await run_command(ctx, command)


@router.get("/review")
async def pending(
    principal: Admin,
    ctx: Ctx,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ReviewPage:
    """What waits for your approval, newest first: held new memories (instructions to an assistant,
    or every new memory of an app whose review setting is `all`) and the model's held updates and
    deletions, each with the app that sent it, why it is held, and the stored text it would change."""
    request = c.BrowseRequest(
        user_id=principal.user_id, states=[c.MemoryState.PENDING], page=page, page_size=page_size
    )
    found = await ctx.ask(c.Query.BROWSE, request, c.BrowseResponse)
    targets = [change[1] for m in found.memories if (change := change_of(m))]
    current: dict[str, str] = {}
    if targets:
        got = await ctx.ask(
            c.Query.GET, c.GetRequest(user_id=principal.user_id, memory_ids=list(set(targets))), c.GetResponse
        )
        current = {m.id: m.text for m in got.memories}
    items = []
    for memory in found.memories:
        change = change_of(memory)
        items.append(
            ReviewItem(
                id=memory.id, kind=kind_of(memory), text=memory.text, app=memory.app,
                reason=str(memory.metadata.get(HELD) or DEFAULT_REASON), created_at=memory.created_at,
                target=change[1] if change else None, target_text=current.get(change[1]) if change else None,
            )
        )  # fmt: skip
    return ReviewPage(items=items, total=found.total, page=found.page, page_size=found.page_size)


@router.post("/review/approve")
async def approve(body: Decision, principal: Admin, ctx: Ctx) -> CommandOutcome:
    """Approve held changes (at most 500): a new memory becomes active and is served; a held update
    or deletion is applied to the memory it names. Any id that is not yours or not waiting for
    review refuses the whole request."""
    return await _decide(ctx, principal, body.ids, "approve")


@router.post("/review/reject")
async def reject(body: Decision, principal: Admin, ctx: Ctx) -> CommandOutcome:
    """Reject held changes (at most 500): each is deleted, and the memory a held update or deletion
    names stays as it is. Any id that is not yours or not waiting for review refuses the request."""
    return await _decide(ctx, principal, body.ids, "reject")


@router.post("/review/{memory_id}/approve")
async def approve_one(memory_id: str, principal: Admin, ctx: Ctx) -> CommandOutcome:
    """Approve one held change."""
    return await _decide(ctx, principal, [memory_id], "approve")


@router.post("/review/{memory_id}/reject")
async def reject_one(memory_id: str, principal: Admin, ctx: Ctx) -> CommandOutcome:
    """Reject one held change."""
    return await _decide(ctx, principal, [memory_id], "reject")


@router.get("/settings/review")
async def get_review(principal: Admin, ctx: Ctx) -> stored_settings.ReviewPolicy:
    """Your review setting: `off` (only what reads as an instruction to an assistant waits),
    `llm-changes` (the model's updates and deletions of stored memories wait too) or `all` (every
    new memory waits too); `apps` gives an app its own setting, which wins over yours."""
    return await stored_settings.load_review(ctx.settings_kv, principal.user_id)


@router.put("/settings/review")
async def put_review(body: dict[str, Any], principal: Admin, ctx: Ctx) -> stored_settings.ReviewPolicy:
    """Change your review setting (`review`: off, llm-changes or all; `apps`: {app name: setting},
    at most 100, replacing the stored ones). It applies to the next write."""
    unknown = set(body) - {"review", "apps"}
    if unknown:
        raise InvalidInput(f"unknown review settings: {', '.join(sorted(unknown))}")
    return await stored_settings.save_review(ctx.settings_kv, principal.user_id, body)
