"""Export and import: everything of the user as one JSON document, an upload of ours or of the
OpenMemory server's export zip, and the conversations of a ChatGPT or Claude data export; each
upload is checked whole before the first command goes to ingest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from openmemory_admin import portable
from openmemory_admin.deps import AdminContext, AdminReader, AdminWriter, CommandOutcome, Ctx, run_command
from openmemory_admin.external_imports import ParsedExport, Source, add_command, parse_export
from openmemory_admin.upload_limits import MAX_UPLOAD_BYTES
from openmemory_core import contracts as c
from openmemory_core.errors import Busy, InvalidInput, OpenMemoryError

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
    data = await _upload(request)
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


async def _upload(request: Request) -> bytes:
    """The request body, refused as soon as it passes the upload limit."""
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    return bytes(data)


# ---- conversations of the big assistants ---------------------------------------------------------

NDJSON = "application/x-ndjson"
#: How often an import waits out a busy ingest (Busy: nothing stored, retry shortly) before giving up.
BUSY_RETRIES = 60


class ConversationsImported(BaseModel):
    """Where an import of conversations stands; the last one says what it did."""

    source: str
    conversations: int
    messages: int  # messages to import (the user's, and the assistant's if asked for)
    done: int = 0  # messages handled so far, skipped ones included
    skipped: int = 0  # imported before (an earlier run, or an interrupted one): not sent again
    added: int = 0  # memories the sent messages added
    accepted: int = 0  # stored but not applied within the wait: they will be
    too_long: int = 0  # messages left out: longer than one memory may be
    finished: bool = False
    error: str | None = None  # why it stopped early (streamed answers only: the status was sent)


@router.post("/import/{source}", response_model=ConversationsImported)
async def import_conversations(
    source: Source, request: Request, principal: AdminWriter, ctx: Ctx, include_assistant: bool = False
) -> Response | ConversationsImported:
    """Upload the `conversations.json` of a ChatGPT or Claude data export as the request body.
    The user's messages go through the extractor (as adds), each keeping its conversation's title
    and its time; `include_assistant=true` adds the assistant's too. The file is checked whole first:
    a malformed one imports nothing. Importing a file again adds nothing it added before.
    With `Accept: application/x-ndjson` the answer streams one progress line per message."""
    data = await _upload(request)
    parsed = await asyncio.to_thread(parse_export, source, data, include_assistant)
    if NDJSON in request.headers.get("accept", ""):

        async def lines() -> AsyncIterator[str]:
            async for progress in _import_messages(ctx, principal, parsed, streamed=True):
                yield progress.model_dump_json() + "\n"

        return StreamingResponse(lines(), media_type=NDJSON)
    last: ConversationsImported | None = None
    async for progress in _import_messages(ctx, principal, parsed, streamed=False):
        last = progress
    assert last is not None  # the generator always yields where it starts
    return last


async def _import_messages(
    ctx: AdminContext, principal: c.Principal, parsed: ParsedExport, streamed: bool
) -> AsyncIterator[ConversationsImported]:
    """Send each message not imported before, one at a time (ingest applies a user's commands in
    order anyway), saying after each where the import stands. A failure ends the import: raised, or
    (`streamed`, the status already sent) said in the last line."""
    commands = [add_command(principal.user_id, parsed.source, m) for m in parsed.messages]
    # A message whose add changed anything has events under its request id: it was imported before.
    wanted = {command.request_id for command in commands}
    done_before = {e.request_id for e in await ctx.bus.events_of(principal.user_id)} & wanted
    state = ConversationsImported(
        source=parsed.source, conversations=parsed.conversations, messages=len(commands),
        too_long=parsed.too_long,
    )  # fmt: skip
    yield state.model_copy()
    for command in commands:
        if command.request_id in done_before:
            state.skipped += 1
        else:
            try:
                outcome = await _send(ctx, command)
            except OpenMemoryError as exc:
                if not streamed:
                    raise
                state.error = exc.message
                yield state.model_copy()
                return
            state.accepted += outcome.status == "accepted"
            state.added += sum(r.event is c.ChangeKind.ADD for r in outcome.results)
        state.done += 1
        yield state.model_copy()
    state.finished = True
    yield state


async def _send(ctx: AdminContext, command: c.AddCommand) -> CommandOutcome:
    """Run one command; while ingest is busy, wait and try again rather than fail the import."""
    for _ in range(BUSY_RETRIES):
        try:
            return await run_command(ctx, command)
        except Busy:
            await asyncio.sleep(Busy.retry_after_seconds)
    return await run_command(ctx, command)
