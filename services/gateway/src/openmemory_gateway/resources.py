"""MCP resources: the user's profile, their recent memories, one memory, one entity's relations.

Each is read for the caller exactly as the tools read: the key's scopes and the app's standing
(`MemoryGateway`), then a search query over NATS for the key's own user only, so another user's
memory id or entity answers "not found". The static resources (`memory://profile`,
`memory://recent`) cannot take the SDK's `Context`, so `CallerScope`, a server middleware, puts the
principal the HTTP front authenticated into a context variable for every message.

Changes reach clients over `subscriptions/listen` (protocol 2026-07-28; see `listens.py`).
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources.templates import ResourceSecurity
from mcp.shared.exceptions import MCPError
from mcp.shared.path_security import contains_path_traversal, is_absolute_path
from mcp.types import INVALID_PARAMS, Annotations
from opentelemetry.trace import SpanKind

from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput, NotFound, OpenMemoryError
from openmemory_core.telemetry import tracer
from openmemory_gateway.answers import capped, memory_view
from openmemory_gateway.listens import (
    GRAPH_TEMPLATE,
    MEMORY_TEMPLATE,
    PROFILE_URI,
    RECENT_URI,
    CallerBus,
    ScopedListens,
)
from openmemory_gateway.service import MemoryGateway, authenticated

#: How many memories `memory://recent` shows, newest first.
RECENT_LIMIT = 20
#: How many relations `memory://graph/{entity}` shows, current ones first.
GRAPH_LIMIT = 100
MAX_ENTITY_CHARS = 200
#: Bidirectional-text controls: they make a name read differently from what it is.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_caller: ContextVar[c.Principal | None] = ContextVar("openmemory_caller", default=None)

FOR_THE_MODEL = Annotations(audience=["assistant"], priority=0.8)


class CallerScope:
    """Server middleware: the authenticated principal of each message, for the resources; and the
    caller's own `subscriptions/listen` streams (`ScopedListens`)."""

    def __init__(self, listens: ScopedListens) -> None:
        self.listens = listens

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        caller = authenticated(ctx.request)
        token = _caller.set(caller)
        try:
            if ctx.method == "subscriptions/listen":
                return await self.listens.serve(ctx, call_next, caller)
            return await call_next(ctx)
        finally:
            _caller.reset(token)


def caller() -> c.Principal:
    principal = _caller.get()
    if principal is None:
        raise ResourceError("not authenticated: connect with an OpenMemory API key")
    return principal


@contextlib.asynccontextmanager
async def _read(resource: str) -> AsyncIterator[None]:
    """Trace one read; domain errors become resource errors the client can show as they are."""
    with tracer.start_as_current_span(f"mcp.resource {resource}", kind=SpanKind.SERVER):
        try:
            yield
        except NotFound as exc:
            raise ResourceNotFoundError(exc.message) from exc
        except InvalidInput as exc:
            raise MCPError(INVALID_PARAMS, exc.message) from exc
        except OpenMemoryError as exc:
            raise ResourceError(exc.message) from exc


def _shown(value: str) -> str:
    """A caller's value as an error message may repeat it: short, with its oddities escaped."""
    return repr(value[:60] + ("…" if len(value) > 60 else ""))


def checked_memory_id(memory_id: str) -> str:
    if len(memory_id) > 100 or not c.is_memory_id(memory_id):
        raise InvalidInput(
            f"not a memory id: {_shown(memory_id)}; a memory id is a UUID, as search_memory and "
            "list_memories return it"
        )
    return c.canonical_id(memory_id)


def checked_entity(entity: str) -> str:
    """An entity name as the graph keys it, or InvalidInput saying what is wrong with it."""
    name = entity.strip()
    if not name:
        raise InvalidInput("the entity name is empty: give a name, e.g. memory://graph/Anna")
    if len(name) > MAX_ENTITY_CHARS:
        raise InvalidInput(f"the entity name is longer than {MAX_ENTITY_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI for ch in name):
        raise InvalidInput(f"the entity name {_shown(name)} has control characters: no entity has them")
    if contains_path_traversal(name) or is_absolute_path(name):
        raise InvalidInput(f"{_shown(name)} is a path, not an entity name: give a name, e.g. Anna")
    return name


def render_profile(profile: c.ProfileResponse) -> str:
    """The profile as short Markdown, for the client's model to read."""
    if not profile.sections:
        return (
            "# About the user\n\nNothing is known about the user yet. Memories added with "
            "add_memories (where they live, their work, preferences, the people around them) show here.\n"
        )
    parts = ["# About the user", ""]
    for section in profile.sections:
        parts += [f"## {section.title}", *(f"- {line}" for line in section.lines), ""]
    note = f"From {profile.read} current memories; replaced facts are left out."
    if profile.truncated:
        note += " Shortened: search_memory finds the rest."
    parts.append(f"_{note}_")
    return "\n".join(parts) + "\n"


def _json(answer: dict[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False, indent=1)


def add_resources(mcp: MCPServer, gateway: MemoryGateway, events: CallerBus) -> None:
    """Register the resources and templates, and the middleware they read the caller from."""
    mcp.middleware.append(CallerScope(ScopedListens(gateway, events)))
    max_chars = gateway.settings.max_answer_chars
    # The template functions check their values themselves, with messages that say what is wrong
    # (the SDK's own path checks answer only "Unknown resource"); no value is ever used as a path.
    own_checks = ResourceSecurity(exempt_params={"memory_id", "entity"})

    @mcp.resource(
        PROFILE_URI, name="profile", title="About the user", mime_type="text/markdown",
        annotations=FOR_THE_MODEL,
    )  # fmt: skip
    async def profile() -> str:
        """A short summary of the user from their current memories: who they are, where they live,
        their work, preferences, and the people around them. Read it at the start of a task."""
        async with _read("profile"):
            return render_profile(await gateway.profile(caller()))

    @mcp.resource(
        RECENT_URI, name="recent", title="Recent memories", mime_type="application/json",
        annotations=FOR_THE_MODEL,
    )  # fmt: skip
    async def recent() -> str:
        """The user's most recent memories, newest first (list_memories pages through all)."""
        async with _read("recent"):
            listed = await gateway.list_memories(caller(), RECENT_LIMIT)
        answer = {"results": [memory_view(m) for m in listed.memories]}
        return _json(capped(answer, "results", max_chars, "list_memories pages through every memory.")[0])

    @mcp.resource(
        MEMORY_TEMPLATE, name="memory", title="One memory", mime_type="application/json",
        security=own_checks,
    )  # fmt: skip
    async def memory(memory_id: str) -> str:
        """One of the user's memories by its id (get_memory adds its history)."""
        async with _read("memory"):
            wanted = checked_memory_id(memory_id)
            found = await gateway.get(caller(), [wanted])
            if not found.memories:
                raise NotFound(f"no such memory: {wanted}")
        return _json({"memory": memory_view(found.memories[0])})  # a text is at most MAX_TEXT_CHARS

    @mcp.resource(
        GRAPH_TEMPLATE, name="entity", title="An entity's relations", mime_type="application/json",
        security=own_checks,
    )  # fmt: skip
    async def entity(entity: str) -> str:
        """What the user's knowledge graph relates to one entity (a person, place, organisation…):
        current relations first, then replaced ones with the time they ended."""
        async with _read("entity"):
            found = await gateway.graph(caller(), checked_entity(entity), GRAPH_LIMIT)
        relations = [
            {"relation": e.relation, "direction": e.direction, "entity": e.entity, "current": e.current,
             "memory_id": e.memory_id, "valid_from": e.valid_from, "valid_to": e.valid_to}
            for e in found.edges
        ]  # fmt: skip
        answer: dict[str, Any] = {"entity": found.entity, "relations": relations}
        rest = "Older relations are left out; search_memory finds the memories about this entity."
        answer, _ = capped(answer, "relations", max_chars, rest)
        if found.truncated and "truncated" not in answer:
            answer.update(truncated=True, message=f"only the first {GRAPH_LIMIT} relations are shown. {rest}")
        return _json(answer)
