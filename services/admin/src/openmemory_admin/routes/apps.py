"""The MCP clients (apps) of the caller's user: what each wrote and read, and its rules (paused,
may read, may write), which the gateway and search apply from the next call on."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from openmemory_admin.deps import Admin, AdminContext, Ctx, Reader
from openmemory_core import contracts as c
from openmemory_core.apps import app_records, get_app, put_app
from openmemory_core.errors import NotFound
from openmemory_core.keys import validate_name

router = APIRouter(tags=["apps"])


# ---- schemas -------------------------------------------------------------------------------------


class AppView(BaseModel):
    app: str
    memories_created: int
    memories_accessed: int
    last_accessed: datetime | None
    paused: bool
    can_read: bool
    can_write: bool


class AppDetail(BaseModel):
    app: AppView
    recent_memories: list[c.Memory]
    recent_access: list[c.AccessRecord]


class AppChange(BaseModel):
    paused: bool | None = None
    can_read: bool | None = None
    can_write: bool | None = None


async def _apps(ctx: AdminContext, user_id: str, accesses: list[c.AccessRecord]) -> list[AppView]:
    stats = await ctx.ask(c.Query.STATS, c.StatsRequest(user_id=user_id), c.StatsResponse)
    created = {x.name: x.count for x in stats.by_app}
    accessed: Counter[str] = Counter()
    last: dict[str, datetime] = {}
    for access in accesses:
        accessed[access.app] += len(access.memory_ids)
        last[access.app] = access.at
    records = {r.app: r for r in await app_records(ctx.apps, user_id)}
    names = sorted(set(created) | set(accessed) | set(records))
    views = []
    for name in names:
        record = records.get(name) or c.AppRecord(user_id=user_id, app=name)
        views.append(
            AppView(
                app=name, memories_created=created.get(name, 0), memories_accessed=accessed[name],
                last_accessed=last.get(name), paused=record.paused, can_read=record.can_read,
                can_write=record.can_write,
            )
        )  # fmt: skip
    return views


# ---- routes --------------------------------------------------------------------------------------


@router.get("/apps")
async def apps(principal: Reader, ctx: Ctx) -> list[AppView]:
    """The MCP clients that wrote or read this user's memories, or were configured, with counts."""
    return await _apps(ctx, principal.user_id, await ctx.bus.accesses_of(principal.user_id))


@router.get("/apps/{app}")
async def app_detail(app: str, principal: Reader, ctx: Ctx) -> AppDetail:
    accesses = await ctx.bus.accesses_of(principal.user_id)
    views = {v.app: v for v in await _apps(ctx, principal.user_id, accesses)}
    if app not in views:
        raise NotFound(f"no app {app!r} for this user")
    memories = await ctx.ask(
        c.Query.BROWSE, c.BrowseRequest(user_id=principal.user_id, app=app, page_size=20), c.BrowseResponse
    )
    access = [a for a in accesses if a.app == app][::-1][:20]
    return AppDetail(app=views[app], recent_memories=memories.memories, recent_access=access)


@router.patch("/apps/{app}")
async def change_app(app: str, body: AppChange, principal: Admin, ctx: Ctx) -> c.AppRecord:
    """Pause or resume an app, or set its read and write permission. Gateway and search refuse a
    paused app, or one without the permission, from the next call on."""
    validate_name("app", app)
    record = await get_app(ctx.apps, principal.user_id, app)
    changes = body.model_dump(exclude_none=True)
    return await put_app(ctx.apps, record.model_copy(update=changes))
