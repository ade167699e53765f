"""Totals of the caller's memories (by state, app, category and day), and the service's status,
which needs no sign-in."""

from __future__ import annotations

from fastapi import APIRouter

from openmemory_admin.deps import Ctx, Reader
from openmemory_core import contracts as c

router = APIRouter(tags=["stats"])
#: Answers without a caller. Its own router so that `routes` can list it last, where it always was.
status_router = APIRouter(tags=["status"])


@router.get("/stats")
async def stats(principal: Reader, ctx: Ctx) -> c.StatsResponse:
    """Totals by state, app, category and day."""
    return await ctx.ask(c.Query.STATS, c.StatsRequest(user_id=principal.user_id), c.StatsResponse)


@router.get("/categories")
async def categories(principal: Reader, ctx: Ctx) -> list[c.Count]:
    return (await stats(principal, ctx)).by_category


@status_router.get("/status")
async def status(ctx: Ctx) -> dict[str, object]:
    """Whether the admin service reaches the bus (no sign-in needed)."""
    return {"bus_connected": ctx.bus.connected}
