"""What changed in the caller's memories: the latest changes, and a live stream of them
(server-sent events relayed from the user's event subject)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import nats.errors
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from nats.aio.msg import Msg
from pydantic import BaseModel

from openmemory_admin.deps import Ctx, Reader, authenticated
from openmemory_admin.session import RECHECK_SECONDS
from openmemory_core import contracts as c
from openmemory_core.apps import authorize
from openmemory_core.errors import OpenMemoryError

router = APIRouter(tags=["activity"])


class Activity(BaseModel):
    at: datetime
    change: c.ChangeKind
    app: str
    memory_id: str
    text: str


def _activity(event: c.MemoryEvent) -> Activity:
    memory = event.after or event.before
    return Activity(
        at=event.at, change=event.change, app=event.app, memory_id=event.memory_id,
        text=memory.text if memory else "",
    )  # fmt: skip


@router.get("/activity")
async def activity(
    principal: Reader, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[Activity]:
    """The latest changes to the user's memories, newest first."""
    events = await ctx.bus.events_of(principal.user_id)
    return [_activity(e) for e in events[::-1][:limit]]


@router.get("/activity/stream")
async def activity_stream(principal: Reader, ctx: Ctx, request: Request) -> StreamingResponse:
    """Server-sent events: a `: connected` comment once every later change will be sent, then one
    `data:` line (an Activity as JSON) per change, as it happens. The caller is checked again
    before changes are sent and every few seconds: the stream ends once its key is revoked or
    expires, its session is signed out, or its app loses read access."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

    async def on_event(msg: Msg) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(msg.data)

    sub = await ctx.bus.nc.subscribe(c.event_subject(principal.user_id), cb=on_event)
    with contextlib.suppress(nats.errors.Error):  # the server has it before ": connected" says so
        await ctx.bus.nc.flush(timeout=2)  # (not flushed, changes still come once it arrives)

    async def still_allowed() -> bool:
        try:
            now = await authenticated(request, ctx, throttled=False)
            await authorize(ctx.apps, now, "read")  # the app may have been paused meanwhile
        except OpenMemoryError:  # revoked, expired, signed out, paused; NATS unreachable: fail closed
            return False
        return now.key_id == principal.key_id

    async def lines() -> AsyncIterator[str]:
        clock = asyncio.get_running_loop().time
        try:
            yield ": connected\n\n"
            checked = quiet = clock()
            while not await request.is_disconnected():
                batch = []
                with contextlib.suppress(TimeoutError):
                    batch.append(await asyncio.wait_for(queue.get(), RECHECK_SECONDS))
                while batch and not queue.empty() and len(batch) < 100:
                    batch.append(queue.get_nowait())
                if batch or clock() - checked >= RECHECK_SECONDS:
                    if not await still_allowed():
                        break
                    checked = clock()
                for data in batch:
                    event = c.MemoryEvent.model_validate_json(data)
                    yield f"data: {_activity(event).model_dump_json()}\n\n"
                if batch or clock() - quiet >= 10:
                    if not batch:
                        yield ": keep-alive\n\n"
                    quiet = clock()
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
