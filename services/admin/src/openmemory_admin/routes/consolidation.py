"""Consolidation on request: `POST /api/v1/consolidate` plans (a dry run, the default) or applies a
user's consolidation, as `openmemory consolidate` does, through the same request to ingest
(`om.consolidate`, `Bus.consolidate`).

It is the caller's own user, with the `admin` scope and the app's rule (`read` for a dry run,
`write` to apply): merging archives memories, which is the user's oversight of their memories, not
an app's. An `operator` key may name another user. Ingest plans one user at a time, so the wait is
bounded: planning has `PLAN_SECONDS`, and applying waits as an add does, then answers `pending`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from openmemory_admin.deps import Ctx, caller
from openmemory_core import contracts as c
from openmemory_core.apps import authorize

router = APIRouter(tags=["consolidation"])

#: How long ingest may take to read and plan a user's memories (5,000 took some 20 s on 2 shared
#: cores, bench/README.md) before the request fails with 503; the plan itself goes on in ingest.
PLAN_SECONDS = 120.0


class ConsolidateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(default=True, description="plan only, change nothing (the default)")
    merge: bool = Field(default=True, description="look for near-duplicates; false: only expire")
    user_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="another user (operator keys only)"
    )


@router.post("/consolidate")
async def consolidate(
    principal: Annotated[c.Principal, Depends(caller)], ctx: Ctx, body: ConsolidateBody | None = None
) -> c.ConsolidationReport:
    """Consolidate your memories: merge near-duplicates (the one that says most is kept; the others
    are archived with `merged_into`) and archive temporary memories whose time is over. With
    `{"dry_run": true}` (the default) nothing changes and the report lists what would; with
    `{"dry_run": false}` the changes are applied (each an UPDATE event with its reason; `applied`
    lists them, `pending: true` when they are still being applied). An `operator` key may give
    `user_id`; other keys consolidate their own user only."""
    body = body or ConsolidateBody()
    user_id = principal.user_id
    if body.user_id is not None and body.user_id != principal.user_id:
        await authorize(ctx.apps, principal, c.OPERATOR_SCOPE)
        user_id = body.user_id
    else:
        await authorize(ctx.apps, principal, "admin", "read" if body.dry_run else "write")
    wait = ctx.command_wait
    request = c.ConsolidateRequest(
        user_id=user_id, dry_run=body.dry_run, merge=body.merge, wait=max(wait, 0.1)
    )
    return await ctx.bus.consolidate(request, PLAN_SECONDS + wait)
