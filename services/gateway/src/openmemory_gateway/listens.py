"""`subscriptions/listen` (MCP 2026-07-28) scoped to the caller: a stream carries
`notifications/resources/updated` for the caller's own resources, as their memories change.

The SDK's listen handler fans events out from one process-wide bus to every stream whose filter
names the URI. Our URIs are the same for every user (`memory://recent`), so a shared bus would tell
one user when another's memories change. Here each stream has its own sink: `ScopedListens`
subscribes, for the stream's lifetime, to the caller's own events subject (`om.evt.<user hash>`,
where ingest publishes every change), and `CallerBus` hands the SDK's listener to that sink only.
The caller is checked when the stream opens and every `RECHECK_SECONDS` (a paused app, or one
without read permission, loses its stream); a stream lasts at most `MAX_STREAM_SECONDS`, so the
stream of a key revoked meanwhile ends, and the key cannot open another.

Clients of earlier protocol versions get no notifications: `MCPServer` serves no
`resources/subscribe`, so their capabilities say `subscribe: false` and `listChanged: false`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import anyio
import nats.errors
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp.types import INVALID_REQUEST
from nats.aio.msg import Msg
from pydantic import ValidationError

from openmemory_core import contracts as c
from openmemory_core.apps import authorize
from openmemory_core.errors import OpenMemoryError
from openmemory_gateway.service import MemoryGateway

log = logging.getLogger(__name__)

PROFILE_URI = "memory://profile"
RECENT_URI = "memory://recent"
MEMORY_TEMPLATE = "memory://memories/{memory_id}"
GRAPH_TEMPLATE = "memory://graph/{entity}"
_MEMORY = UriTemplate.parse(MEMORY_TEMPLATE)
_GRAPH = UriTemplate.parse(GRAPH_TEMPLATE)

RECHECK_SECONDS = 5.0
MAX_STREAM_SECONDS = 3600.0
MAX_STREAMS = 512
MAX_STREAMS_PER_USER = 8

Listener = Callable[[ServerEvent], None]


def memory_uri(memory_id: str) -> str:
    return _MEMORY.expand({"memory_id": memory_id})


def entity_uri(name: str) -> str:
    """As the template spells it: `memory://graph/Anna%20Smith`."""
    return _GRAPH.expand({"entity": name})


def changed_uris(event: c.MemoryEvent) -> list[str]:
    """The resources a change of one memory may have changed."""
    names: dict[str, None] = {}
    for memory in (event.before, event.after):
        if memory is not None:
            names.update(dict.fromkeys(memory.entities))
            for relation in memory.relations:
                names.update(dict.fromkeys((relation.subject, relation.object)))
    return [RECENT_URI, PROFILE_URI, memory_uri(event.memory_id), *(entity_uri(n) for n in names if n)]


class _Sink:
    """One listen stream's listeners (the SDK registers one), fed with its caller's changes."""

    def __init__(self, principal: c.Principal) -> None:
        self.principal = principal
        self.listeners: dict[object, Listener] = {}

    def add(self, listener: Listener) -> Callable[[], None]:
        token = object()
        self.listeners[token] = listener

        def remove() -> None:
            self.listeners.pop(token, None)

        return remove

    def deliver(self, event: ServerEvent) -> None:
        for listener in list(self.listeners.values()):
            try:
                listener(event)
            except Exception:  # one listener must not starve the others
                log.exception("a listen stream's listener failed")

    async def on_message(self, msg: Msg) -> None:
        try:
            event = c.MemoryEvent.model_validate_json(msg.data)
        except ValidationError:
            log.warning("an unreadable event on %s was not announced", msg.subject)
            return
        if event.user_id != self.principal.user_id or event.change == c.ChangeKind.NONE:
            return
        for uri in changed_uris(event):
            self.deliver(ResourceUpdated(uri=uri))


_sink: ContextVar[_Sink | None] = ContextVar("openmemory_listen_sink", default=None)


class CallerBus:
    """The SDK's subscription bus (`MCPServer(subscriptions=…)`), scoped to the listening caller:
    a listener is registered with the sink of the stream being opened, never process-wide."""

    def __init__(self) -> None:
        self.sinks: set[_Sink] = set()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        sink = _sink.get()
        if sink is None:  # a stream not opened through ScopedListens: it is told nothing
            return lambda: None
        return sink.add(listener)

    async def publish(self, event: ServerEvent) -> None:
        """List changes concern every client alike; a resource update belongs to one user and
        comes from that user's events only."""
        if isinstance(event, ResourceUpdated):
            raise ValueError("resource updates are per user: they come from the user's own events")
        for sink in list(self.sinks):
            sink.deliver(event)


class ScopedListens:
    """Opens each `subscriptions/listen` stream for its caller (see the module's docstring)."""

    def __init__(self, gateway: MemoryGateway, events: CallerBus) -> None:
        self.gateway = gateway
        self.events = events
        self.open: Counter[str] = Counter()

    async def _allowed(self, principal: c.Principal) -> str | None:
        """Why the caller may not listen (any more); None when they may."""
        try:
            await authorize(self.gateway.apps, principal, "read")
        except OpenMemoryError as exc:
            return exc.message
        except Exception:  # NATS unreachable: fail closed
            log.warning("could not check a listener's access", exc_info=True)
            return "access could not be checked"
        return None

    async def serve(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, principal: c.Principal | None
    ) -> HandlerResult:
        if principal is None:
            raise MCPError(INVALID_REQUEST, "not authenticated: connect with an OpenMemory API key")
        if refused := await self._allowed(principal):
            raise MCPError(INVALID_REQUEST, refused)
        user = principal.user_id
        if self.open.total() >= MAX_STREAMS or self.open[user] >= MAX_STREAMS_PER_USER:
            raise MCPError(
                INVALID_REQUEST,
                f"too many open listen streams (at most {MAX_STREAMS_PER_USER} per user): close one first",
            )
        sink = _Sink(principal)
        self.open[user] += 1
        self.events.sinks.add(sink)
        token = _sink.set(sink)
        sub = None
        try:
            sub = await self.gateway.bus.nc.subscribe(c.event_subject(user), cb=sink.on_message)
            await self.gateway.bus.nc.flush()  # subscribed before the stream is acknowledged
            ended: list[str] = []
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    ended.append(await self._watch(principal))
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                result = await call_next(ctx)
                group.cancel_scope.cancel()
                return result
            raise MCPError(INVALID_REQUEST, f"{ended[0] if ended else 'closed'}: listen again to continue")
        finally:
            _sink.reset(token)
            self.events.sinks.discard(sink)
            self.open[user] -= 1
            if self.open[user] <= 0:
                del self.open[user]
            if sub is not None:
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()

    async def _watch(self, principal: c.Principal) -> str:
        """Returns, ending the stream, once the caller may no longer listen or its time is up."""
        started = anyio.current_time()
        while True:
            await anyio.sleep(RECHECK_SECONDS)
            if anyio.current_time() - started >= MAX_STREAM_SECONDS:
                return f"a listen stream lasts at most {int(MAX_STREAM_SECONDS)} seconds"
            if refused := await self._allowed(principal):
                return refused
