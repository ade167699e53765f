"""The caller's memories: browse, one memory with its history and access log, related memories,
and changes (edit, pause, resume, archive, delete), which go to ingest as commands."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from openmemory_admin.deps import AdminContext, CommandOutcome, Ctx, Reader, Writer, run_command
from openmemory_core import contracts as c
from openmemory_core.errors import Forbidden, InvalidInput, NotFound

router = APIRouter(tags=["memories"])


# ---- schemas -------------------------------------------------------------------------------------


class MemoryDetail(BaseModel):
    memory: c.Memory | None
    history: list[c.MemoryEvent]
    access_log: list[c.AccessRecord]


class Related(BaseModel):
    memories: list[c.ScoredMemory]
    graph: list[c.GraphResponse]


class Edit(BaseModel):
    text: str = Field(min_length=1, max_length=c.MAX_TEXT_CHARS)


class Bulk(BaseModel):
    action: Literal["pause", "resume", "archive", "delete"]
    ids: list[str] = Field(min_length=1, max_length=c.MAX_IDS_PER_REQUEST)


STATE_OF: dict[str, Literal[c.MemoryState.ACTIVE, c.MemoryState.PAUSED, c.MemoryState.ARCHIVED]] = {
    "pause": c.MemoryState.PAUSED,
    "resume": c.MemoryState.ACTIVE,
    "archive": c.MemoryState.ARCHIVED,
}


async def _own(ctx: AdminContext, principal: c.Principal, ids: list[str]) -> list[c.Memory]:
    """The caller's memories with these ids; any other id refuses the whole request."""
    ids = c.canonical_ids(ids)
    found = await ctx.ask(c.Query.GET, c.GetRequest(user_id=principal.user_id, memory_ids=ids), c.GetResponse)
    if found.missing:
        raise NotFound(f"no such memories: {', '.join(found.missing[:10])}; nothing was changed")
    return found.memories


# ---- routes --------------------------------------------------------------------------------------


@router.get("/memories")
async def browse(
    principal: Reader,
    ctx: Ctx,
    text: Annotated[str | None, Query(max_length=c.MAX_QUERY_CHARS)] = None,
    app: str | None = None,
    category: str | None = None,
    state: Annotated[list[c.MemoryState] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sort: Literal["created_desc", "created_asc", "updated_desc", "time_desc", "time_asc"] = "created_desc",
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 25,
) -> c.BrowseResponse:
    """The caller's memories (all but deleted by default), filtered, sorted and paginated."""
    request = c.BrowseRequest(
        user_id=principal.user_id, text=text, app=app, category=category, since=since, until=until,
        sort=sort, page=page, page_size=page_size,
        **({"states": state} if state else {}),
    )  # fmt: skip
    return await ctx.ask(c.Query.BROWSE, request, c.BrowseResponse)


@router.get("/memories/{memory_id}")
async def memory_detail(memory_id: str, principal: Reader, ctx: Ctx) -> MemoryDetail:
    """One memory with its history (every change) and its access log (which app saw it, when)."""
    (memory_id,) = c.canonical_ids([memory_id])
    found = await ctx.ask(
        c.Query.HISTORY, c.HistoryRequest(user_id=principal.user_id, memory_id=memory_id), c.HistoryResponse
    )
    log = [a for a in await ctx.bus.accesses_of(principal.user_id) if memory_id in a.memory_ids]
    return MemoryDetail(memory=found.memory, history=found.events, access_log=log[::-1][:200])


@router.get("/memories/{memory_id}/related")
async def related(memory_id: str, principal: Reader, ctx: Ctx) -> Related:
    """Memories like this one (hybrid search on its text), and its entities' neighbourhoods."""
    (memory,) = await _own(ctx, principal, [memory_id])
    memory_id = memory.id
    found = await ctx.ask(
        c.Query.SEARCH, c.SearchRequest(user_id=principal.user_id, query=memory.text[:2000], limit=6),
        c.SearchResponse,
    )  # fmt: skip
    graphs = []
    for entity in memory.entities[:8]:
        with contextlib.suppress(NotFound):
            graphs.append(
                await ctx.ask(
                    c.Query.GRAPH, c.GraphRequest(user_id=principal.user_id, entity=entity), c.GraphResponse
                )
            )
    return Related(memories=[h for h in found.hits if h.memory.id != memory_id][:5], graph=graphs)


@router.patch("/memories/{memory_id}")
async def edit(memory_id: str, body: Edit, principal: Writer, ctx: Ctx) -> CommandOutcome:
    """Change a memory's text: ingest re-embeds it and updates the graph."""
    (memory,) = await _own(ctx, principal, [memory_id])
    if not body.text.strip():
        raise InvalidInput("the text is empty")
    command = c.EditCommand(user_id=principal.user_id, app=principal.app, memory_id=memory.id, text=body.text)
    return await run_command(ctx, command)


@router.delete("/memories/{memory_id}")
async def delete_one(memory_id: str, principal: Writer, ctx: Ctx) -> CommandOutcome:
    (memory,) = await _own(ctx, principal, [memory_id])
    return await run_command(
        ctx, c.DeleteCommand(user_id=principal.user_id, app=principal.app, memory_ids=[memory.id])
    )


@router.post("/memories/actions")
async def bulk(body: Bulk, principal: Writer, ctx: Ctx) -> CommandOutcome:
    """Pause, resume (make active), archive or delete one or many memories. Only active memories
    are found by search; paused and archived ones stay listed here."""
    owned = await _own(ctx, principal, body.ids)
    held = body.action != "delete" and any(m.state is c.MemoryState.PENDING for m in owned)
    if held and not principal.can("admin"):  # else an app could approve what it wrote itself
        raise Forbidden("a memory held for review is approved with an admin key (/review); nothing changed")
    ids = [m.id for m in owned]
    if body.action == "delete":
        return await run_command(
            ctx, c.DeleteCommand(user_id=principal.user_id, app=principal.app, memory_ids=ids)
        )
    command = c.SetStateCommand(
        user_id=principal.user_id, app=principal.app, memory_ids=ids, state=STATE_OF[body.action]
    )
    return await run_command(ctx, command)
