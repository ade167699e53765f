"""Export and import: everything of the user as one JSON document, and an upload of ours or of the
OpenMemory server's export zip, checked whole before the first import command goes to ingest."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from openmemory_admin import portable
from openmemory_admin.deps import AdminReader, AdminWriter, Ctx, run_command
from openmemory_admin.upload_limits import MAX_UPLOAD_BYTES
from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput

router = APIRouter(tags=["data"])


class Imported(BaseModel):
    source: str
    memories: int
    batches: int
    accepted: int  # batches stored but not applied within the wait; they will be


@router.get("/export")
async def export(principal: AdminReader, ctx: Ctx) -> Response:
    """Everything of the user: memories (every state), history, graph and the embedding model."""
    stats_now = await ctx.ask(c.Query.STATS, c.StatsRequest(user_id=principal.user_id), c.StatsResponse)
    memories: list[c.Memory] = []
    page = 1
    while True:
        found = await ctx.ask(
            c.Query.BROWSE,
            c.BrowseRequest(user_id=principal.user_id, sort="created_asc", page=page, page_size=200),
            c.BrowseResponse,
        )
        memories.extend(found.memories)
        if page * found.page_size >= found.total:
            break
        page += 1
    whole = await ctx.ask(
        c.Query.USER_GRAPH, c.UserGraphRequest(user_id=principal.user_id, limit=5000), c.UserGraphResponse
    )
    document = portable.Export(
        user_id=principal.user_id, embedding_model=stats_now.embedding_model, memories=memories,
        history=await ctx.bus.events_of(principal.user_id), graph=whole,
    )  # fmt: skip
    name = f"openmemory-{principal.user_id}-{c.now():%Y%m%d-%H%M%S}.json"
    return Response(
        document.model_dump_json(),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/import")
async def import_file(request: Request, principal: AdminWriter, ctx: Ctx) -> Imported:
    """Upload an export as the request body: ours (JSON) or an OpenMemory export zip. The file is
    checked whole first: a malformed one imports nothing."""
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    # Parsing and sizing up to 100,000 memories is CPU work: off the event loop, which serves others.
    source, memories = await asyncio.to_thread(portable.parse_upload, bytes(data))
    batches = await asyncio.to_thread(portable.batches, memories)
    accepted = 0
    for batch in batches:
        outcome = await run_command(
            ctx, c.ImportCommand(user_id=principal.user_id, app=principal.app, memories=batch)
        )
        accepted += outcome.status == "accepted"
    return Imported(source=source, memories=len(memories), batches=len(batches), accepted=accepted)
