"""The MCP tools, with OpenMemory's names. Their docstrings are what the client's model reads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from opentelemetry.trace import SpanKind
from pydantic import Field

from openmemory_core import contracts as c
from openmemory_core.errors import OpenMemoryError
from openmemory_core.telemetry import MCP_CALLS, MCP_DURATION, tracer
from openmemory_gateway.service import Accepted, MemoryGateway

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


def principal_of(ctx: Context) -> c.Principal:
    """The caller, as authenticated by the gateway for this very HTTP request."""
    request = ctx.request_context.request
    principal = getattr(getattr(request, "state", None), "principal", None)
    if not isinstance(principal, c.Principal):
        raise ToolError("not authenticated: connect with an OpenMemory API key")
    return principal


def _aware(moment: datetime | None) -> datetime | None:
    """A date or time without a zone is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _memory_view(memory: c.Memory) -> dict[str, Any]:
    return {
        "id": memory.id,
        "memory": memory.text,
        "app": memory.app,
        "categories": memory.categories,
        "created_at": memory.created_at.isoformat(),
        "updated_at": memory.updated_at.isoformat(),
        "refers_to": memory.occurred_at.isoformat() if memory.occurred_at else None,
        "superseded_by": memory.superseded_by,  # the newer memory that replaced this one's fact
    }


def _changes(outcome: c.CommandResult | Accepted) -> dict[str, Any]:
    if isinstance(outcome, Accepted):
        return {
            "status": "accepted",
            "request_id": outcome.request_id,
            "message": "Accepted and stored durably; it will be searchable once processed.",
        }
    return {
        "status": "done",
        "request_id": outcome.request_id,
        "results": [r.model_dump(mode="json") for r in outcome.results],
    }


def build_mcp(gateway: MemoryGateway) -> MCPServer:
    mcp = MCPServer(name="openmemory", instructions=INSTRUCTIONS, version="0.1.0")

    @mcp.tool()
    async def add_memories(
        text: Annotated[str, Field(description="What to remember, in the user's words")],
        ctx: Context,
        infer: Annotated[
            bool, Field(description="Split into separate facts (true) or store the text verbatim (false)")
        ] = True,
    ) -> dict[str, Any]:
        """Add new memories. Call this whenever the user tells you something about themselves, their
        preferences, their work or anything they may want recalled later, in any tool. Answers with
        each memory created (id, memory, event) or, if processing takes longer, that it was accepted."""
        async with _called("add_memories"):
            return _changes(await gateway.add(principal_of(ctx), text, infer))

    @mcp.tool()
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
    ) -> dict[str, Any]:
        """Search the user's memories. Call this for every question where what you know about the user
        could help: preferences, facts, people, projects, earlier conversations. Best matches first,
        each with its score and the signals (dense, keyword, graph) that found it."""
        filters = c.SearchFilters(
            app=app, categories=[category] if category else [], since=_aware(since), until=_aware(until)
        )
        async with _called("search_memory"):
            found = await gateway.search(principal_of(ctx), query, limit, filters)
        answer: dict[str, Any] = {
            "results": [
                {**_memory_view(h.memory), "score": h.score, "signals": h.signals} for h in found.hits
            ]
        }
        if found.missing_signals:  # a store was down: the ranking lacks these signals
            answer["missing_signals"] = found.missing_signals
        return answer

    @mcp.tool()
    async def list_memories(ctx: Context) -> dict[str, Any]:
        """List all of the user's memories, newest first."""
        async with _called("list_memories"):
            listed = await gateway.list_memories(principal_of(ctx), 1000)
        return {"results": [_memory_view(m) for m in listed.memories]}

    @mcp.tool()
    async def get_memory(
        memory_id: Annotated[str, Field(description="The id of one memory, as search or list return it")],
        ctx: Context,
    ) -> dict[str, Any]:
        """Get one memory with its history: when it was added, changed or deleted, and by which app."""
        async with _called("get_memory"):
            found = await gateway.history(principal_of(ctx), memory_id)
        return {
            "memory": _memory_view(found.memory) if found.memory else None,
            "history": [
                {
                    "event": e.change.value,
                    "at": e.at.isoformat(),
                    "app": e.app,
                    "request_id": e.request_id,
                    "before": e.before.text if e.before else None,
                    "after": e.after.text if e.after else None,
                }
                for e in found.events
            ],
        }

    @mcp.tool()
    async def delete_memories(
        memory_ids: Annotated[list[str], Field(description="Ids of the memories to delete")], ctx: Context
    ) -> dict[str, Any]:
        """Delete the given memories. Every id must be one of the user's memories, or nothing is deleted."""
        async with _called("delete_memories"):
            return _changes(await gateway.delete(principal_of(ctx), memory_ids))

    @mcp.tool()
    async def delete_all_memories(ctx: Context) -> dict[str, Any]:
        """Delete every memory of the user. Only when the user clearly asks for it."""
        async with _called("delete_all_memories"):
            return _changes(await gateway.delete_all(principal_of(ctx)))

    return mcp
