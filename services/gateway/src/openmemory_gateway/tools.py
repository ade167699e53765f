"""The MCP tools, with OpenMemory's names. Their docstrings are what the client's model reads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import NoBackChannelError
from mcp.types import ClientCapabilities, ElicitationCapability, ToolAnnotations
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, Field

from openmemory_core import contracts as c
from openmemory_core.errors import OpenMemoryError
from openmemory_core.telemetry import MCP_CALLS, MCP_DURATION, tracer
from openmemory_gateway.answers import capped, field_picker, memory_view, noted, state_change
from openmemory_gateway.listens import CallerBus
from openmemory_gateway.prompts import add_prompts
from openmemory_gateway.resources import add_resources
from openmemory_gateway.service import Accepted, MemoryGateway, authenticated
from openmemory_gateway.stages import GATEWAY_STAGE, timed
from openmemory_gateway.tasks import LongWrites, request_view

INSTRUCTIONS = (
    "OpenMemory is the user's private, long-term memory, shared by all their AI tools. "
    "Search it before answering questions about the user, their preferences, projects or past "
    "conversations; add to it whenever the user shares something worth remembering."
)


@contextlib.asynccontextmanager
async def _called(tool: str) -> AsyncIterator[None]:
    """Trace and count one tool call; domain errors become tool errors the client's model can read."""
    started = time.perf_counter()
    outcome = "ok"
    with tracer.start_as_current_span(f"mcp.tool {tool}", kind=SpanKind.SERVER):
        try:
            yield
        except OpenMemoryError as exc:
            outcome = "error"
            raise ToolError(exc.message) from exc
        except ToolError:
            outcome = "error"
            raise
        except Exception:
            outcome = "failure"
            raise
        finally:
            MCP_CALLS.labels(tool, outcome).inc()
            MCP_DURATION.labels(tool).observe(time.perf_counter() - started)
            GATEWAY_STAGE.labels("tool").observe(time.perf_counter() - started)


def principal_of(ctx: Context) -> c.Principal:
    """The caller, as authenticated by the gateway for this very HTTP request."""
    principal = authenticated(ctx.request_context.request)
    if principal is None:
        raise ToolError("not authenticated: connect with an OpenMemory API key")
    return principal


def _aware(moment: datetime | None) -> datetime | None:
    """A date or time without a zone is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _changes(outcome: c.CommandResult | Accepted) -> dict[str, Any]:
    if isinstance(outcome, Accepted):
        return {
            "status": "accepted",
            "request_id": outcome.request_id,
            "message": "Accepted and stored durably; it will be searchable once processed.",
        }
    answer: dict[str, Any] = {
        "status": "done",
        "request_id": outcome.request_id,
        "results": [r.model_dump(mode="json") for r in outcome.results],
    }
    if outcome.note:  # e.g. extracted without the LLM because its daily budget is spent
        answer["note"] = outcome.note
    return answer


#: Reads change nothing; deleting the same ids twice leaves the same state; nothing here reaches
#: beyond the user's own memory store.
READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


class ConfirmDeleteAll(BaseModel):
    """What a client that supports elicitation asks its user before every memory is deleted."""

    confirm: bool = Field(description="Yes: delete every memory. This cannot be undone.")


NOT_CONFIRMED = (
    "nothing was deleted: delete_all_memories erases every memory of the user and cannot be undone. "
    "Only if the user clearly asked for exactly that, call it again with confirm: true."
)


async def _user_confirms(ctx: Context) -> bool:
    """Ask the user through the client (elicitation) whether to delete everything. False when the
    client cannot be asked; a decline or cancel is refused with a tool error (nothing deleted)."""
    session = ctx.request_context.session
    if not session.check_client_capability(ClientCapabilities(elicitation=ElicitationCapability())):
        return False
    try:
        answer = await ctx.elicit(
            "Delete every memory OpenMemory holds for you, from every app? This cannot be undone.",
            ConfirmDeleteAll,
        )
    except NoBackChannelError:  # the transport cannot carry a request to the client: ask for confirm
        return False
    if answer.action == "accept" and answer.data.confirm:
        return True
    raise ToolError("the user did not confirm deleting every memory: nothing was deleted")


def build_mcp(gateway: MemoryGateway) -> MCPServer:
    events = CallerBus()  # listen streams carry only their caller's changes: `listens.py`
    mcp = MCPServer(
        name="openmemory", instructions=INSTRUCTIONS, version="0.1.0", extensions=[LongWrites(gateway)],
        subscriptions=events,
    )  # fmt: skip
    add_resources(mcp, gateway, events)
    add_prompts(mcp)
    max_chars = gateway.settings.max_answer_chars

    @mcp.tool(
        title="Add memories",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    async def add_memories(
        text: Annotated[str, Field(description="What to remember, in the user's words")],
        ctx: Context,
        infer: Annotated[
            bool, Field(description="Split into separate facts (true) or store the text verbatim (false)")
        ] = True,
        expires_at: Annotated[
            datetime | None,
            Field(
                description="Only for something true for a while (a code, a temporary address): "
                "archive it after this time (ISO 8601)"
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Add new memories. Call this whenever the user tells you something about themselves, their
        preferences, their work or anything they may want recalled later, in any tool. Answers with
        each memory created (id, memory, event) or, if processing takes longer, that it was accepted."""
        async with _called("add_memories"):
            until = _aware(expires_at)  # consolidation archives it after that (README "Trust")
            metadata = {"expires_at": until.isoformat()} if until else None
            answer = _changes(await gateway.add(principal_of(ctx), text, infer, metadata))
        return _capped_changes(answer, max_chars)

    @mcp.tool(title="Search memories", annotations=READ)
    async def search_memory(
        query: Annotated[str, Field(description="What to look for, in natural language")],
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100, description="How many memories at most")] = 10,
        app: Annotated[str | None, Field(description="Only memories added by this app (MCP client)")] = None,
        category: Annotated[
            str | None, Field(description="Only memories in this category, e.g. health")
        ] = None,
        since: Annotated[
            datetime | None,
            Field(description="Only memories about this time or later (ISO 8601 date or time)"),
        ] = None,
        until: Annotated[
            datetime | None,
            Field(description="Only memories about this time or earlier (ISO 8601 date or time)"),
        ] = None,
        fields: Annotated[
            list[str] | str | None,
            Field(
                description='Only these fields of each result, e.g. ["id", "memory"]; or "snippet" for '
                "id, a shortened memory and score. Default: every field"
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Search the user's memories. Call this for every question where what you know about the user
        could help: preferences, facts, people, projects, earlier conversations. Best matches first,
        each with its score and the signals (dense, keyword, graph) that found it."""
        filters = c.SearchFilters(
            app=app, categories=[category] if category else [], since=_aware(since), until=_aware(until)
        )
        async with _called("search_memory"):
            pick = field_picker(fields)
            found = await gateway.search(principal_of(ctx), query, limit, filters)
        with timed("answer"):
            answer: dict[str, Any] = {
                "results": [
                    pick({**memory_view(h.memory), "score": h.score, "signals": h.signals, **noted(h)})
                    for h in found.hits
                ]
            }
            if found.missing_signals:  # a store was down: the ranking lacks these signals
                answer["missing_signals"] = found.missing_signals
            rest = (
                "For the rest, search again with a smaller limit, "
                'or with fields ["id", "memory"] or "snippet".'
            )
            return capped(answer, "results", max_chars, rest)[0]

    @mcp.tool(title="List memories", annotations=READ)
    async def list_memories(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=500, description="How many memories at most in this page")] = 50,
        cursor: Annotated[
            str | None,
            Field(
                max_length=c.MAX_CURSOR_CHARS,
                description="The next_cursor of the previous page, to get the page after it",
            ),
        ] = None,
        app: Annotated[str | None, Field(description="Only memories added by this app (MCP client)")] = None,
        category: Annotated[
            str | None, Field(description="Only memories in this category, e.g. health")
        ] = None,
    ) -> dict[str, Any]:
        """List the user's memories, newest first, one page at a time. When the answer has a
        next_cursor there are more: call again with cursor set to it. No next_cursor: that was all."""
        principal = principal_of(ctx)
        filters = c.SearchFilters(app=app, categories=[category] if category else [])
        async with _called("list_memories"):
            listed = await gateway.list_memories(principal, limit, cursor, filters)
            answer, kept = _capped_list(listed, max_chars)
            for _ in range(3):
                if kept == len(listed.memories):
                    break
                # A cut page needs the cursor of what it shows: ask for exactly that many. Memories
                # created at one instant may come in another order, so show the page asked for.
                listed = await gateway.list_memories(principal, kept, cursor, filters)
                answer, kept = _capped_list(listed, max_chars)
                answer.update(truncated=True, message=LIST_CUT.format(max_chars=max_chars))
        if listed.next_offset:
            answer["next_cursor"] = listed.next_offset
        return answer

    @mcp.tool(title="Get one memory and its history", annotations=READ)
    async def get_memory(
        memory_id: Annotated[str, Field(description="The id of one memory, as search or list return it")],
        ctx: Context,
    ) -> dict[str, Any]:
        """Get one memory with its history: when it was added, changed or deleted, and by which app."""
        async with _called("get_memory"):
            found = await gateway.history(principal_of(ctx), memory_id)
        answer = {
            "memory": memory_view(found.memory) if found.memory else None,
            "history": [
                {
                    "event": e.change.value,
                    "at": e.at.isoformat(),
                    "app": e.app,
                    "request_id": e.request_id,
                    "before": e.before.text if e.before else None,
                    "after": e.after.text if e.after else None,
                    **state_change(e),
                }
                for e in found.events
            ],
        }
        return capped(answer, "history", max_chars, "The history shown is the oldest part.")[0]

    @mcp.tool(title="How an accepted request ended", annotations=READ)
    async def get_request(
        request_id: Annotated[
            str,
            Field(max_length=128, description="The request_id of an add or delete that answered accepted"),
        ],
        ctx: Context,
    ) -> dict[str, Any]:
        """Tell how an add or delete that answered "accepted" ended: pending (not applied yet), applied
        (with each memory it created or changed) or failed (with the reason). Kept for a day."""
        async with _called("get_request"):
            record = await gateway.request_status(principal_of(ctx), request_id)
        return _capped_changes(request_view(request_id, record), max_chars)

    @mcp.tool(
        title="Delete memories",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def delete_memories(
        memory_ids: Annotated[list[str], Field(description="Ids of the memories to delete")], ctx: Context
    ) -> dict[str, Any]:
        """Delete the given memories. Every id must be one of the user's memories, or nothing is deleted."""
        async with _called("delete_memories"):
            answer = _changes(await gateway.delete(principal_of(ctx), memory_ids))
        return _capped_changes(answer, max_chars)

    @mcp.tool(
        title="Delete ALL memories",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        ),
    )
    async def delete_all_memories(
        ctx: Context,
        confirm: Annotated[
            bool,
            Field(
                description="Must be true, or nothing is deleted: set it only when the user clearly "
                "asked to delete every memory"
            ),
        ] = False,
    ) -> dict[str, Any]:
        """Delete every memory of the user, from every app. Only when the user clearly asks for it, and
        with confirm: true (a client that can ask its user is asked instead). Cannot be undone."""
        async with _called("delete_all_memories"):
            principal = principal_of(ctx)
            if not confirm and not await _user_confirms(ctx):
                raise ToolError(NOT_CONFIRMED)
            answer = _changes(await gateway.delete_all(principal))
        return _capped_changes(answer, max_chars)

    return mcp


LIST_CUT = (
    "truncated: this page holds fewer memories than asked for, because an answer is limited to "
    "{max_chars} characters. Call again with cursor set to next_cursor for the rest."
)


def _capped_list(listed: c.ListResponse, max_chars: int) -> tuple[dict[str, Any], int]:
    answer: dict[str, Any] = {"results": [memory_view(m) for m in listed.memories]}
    rest = "Call again with cursor set to next_cursor for the rest, or with a smaller limit."
    return capped(answer, "results", max_chars, rest)


def _capped_changes(answer: dict[str, Any], max_chars: int) -> dict[str, Any]:
    if "results" not in answer:
        return answer
    rest = "Every change listed or not was made; list_memories or get_memory shows the others."
    return capped(answer, "results", max_chars, rest)[0]
