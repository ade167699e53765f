"""What the MCP tools do, in domain terms: commands out over JetStream, queries to search."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from nats.js.kv import KeyValue
from pydantic import BaseModel

from openmemory_core import contracts as c
from openmemory_core import requests
from openmemory_core.apps import authorize
from openmemory_core.bus import Bus
from openmemory_core.errors import InvalidInput, Unavailable
from openmemory_core.kv import BUS_DOWN, Bucket
from openmemory_core.settings import GatewaySettings
from openmemory_core.telemetry import request_id_var
from openmemory_gateway.accesslog import AccessLog
from openmemory_gateway.stages import timed

log = logging.getLogger(__name__)

#: NATS not answering, whether wrapped by the bus or raw from the client.
UNREACHABLE: tuple[type[Exception], ...] = (Unavailable, *BUS_DOWN)

R = TypeVar("R", bound=BaseModel)


def authenticated(request: object) -> c.Principal | None:
    """The principal the gateway's front authenticated for this very HTTP request (`app.py` puts it
    in the request's state); None when there is none. Every MCP door reads the caller here."""
    principal = getattr(getattr(request, "state", None), "principal", None)
    return principal if isinstance(principal, c.Principal) else None


class Accepted(BaseModel):
    """A command that is stored durably but was not applied within the wait."""

    request_id: str
    status: str = "accepted"


class MemoryGateway:
    def __init__(
        self, bus: Bus, settings: GatewaySettings, apps: KeyValue, access: AccessLog | None = None
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.apps = apps  # in the running gateway, a `watched.WatchedBucket`: read from its cache
        self.access = access or AccessLog(bus)
        self._requests: Bucket | None = None  # opened once: each open is a stream_info round trip

    async def _requests_bucket(self) -> Bucket:
        if self._requests is None:
            self._requests = await self.bus.requests_bucket()
        return self._requests

    async def _require(self, principal: c.Principal, scope: str) -> None:
        """The key's scope, then the app's standing with its user (paused, read, write)."""
        with timed("app_check"):
            await authorize(self.apps, principal, scope)

    async def _query(self, query: c.Query, request: BaseModel, response: type[R]) -> R:
        with timed(f"{query.value}_request"):
            return await self.bus.query(query, request, response, self.settings.query_timeout_seconds)

    async def _accessed(
        self, principal: c.Principal, kind: str, memories: list[c.Memory], query: str | None
    ) -> None:
        """Add to the access log, without waiting; a read is never failed for want of its log line."""
        await self._accessed_ids(principal, kind, [m.id for m in memories], query)

    async def _accessed_ids(
        self, principal: c.Principal, kind: str, memory_ids: list[str], query: str | None
    ) -> None:
        if not memory_ids:
            return
        with timed("access_log"):
            record = c.AccessRecord.model_validate(
                {"user_id": principal.user_id, "app": principal.app, "kind": kind, "query": query,
                 "memory_ids": list(dict.fromkeys(memory_ids))}
            )  # fmt: skip
            self.access.record(record)  # published in the background (`accesslog`)

    async def _submit(self, command: c.AnyCommand) -> c.CommandResult | Accepted:
        """Publish durably, then wait a short while for ingest to apply it. When ingest is far behind
        on this user's partition, refuse with a retryable error instead: never drop."""
        request_id_var.set(command.request_id)  # this task's log lines carry it
        done = await self.bus.submit(command, self.settings.add_wait_seconds, self.settings.max_backlog)
        if done is not None:
            return done
        try:
            bucket = await self._requests_bucket()
        except UNREACHABLE as exc:  # stored all the same: never fail an accepted write
            log.warning("request %s is stored; its pending record is not (%s)", command.request_id, exc)
        else:
            await requests.note_pending(bucket, command.user_id, command.kind, command.request_id)
        return Accepted(request_id=command.request_id)

    async def request_status(self, principal: c.Principal, request_id: str) -> c.RequestRecord:
        """How one of the user's accepted requests ended (or that it is still pending)."""
        await self._require(principal, "read")
        return await requests.read(await self._requests_bucket(), principal.user_id, request_id)

    async def add(
        self, principal: c.Principal, text: str, infer: bool, metadata: dict[str, Any] | None = None
    ) -> c.CommandResult | Accepted:
        await self._require(principal, "write")
        if not text.strip():
            raise InvalidInput("text is empty: give the memory to add")
        if len(text) > self.settings.max_text_chars:
            raise InvalidInput(f"text is {len(text)} characters; the limit is {self.settings.max_text_chars}")
        command = c.AddCommand(
            user_id=principal.user_id, app=principal.app, text=text, infer=infer, metadata=metadata or {}
        )
        return await self._submit(command)

    async def search(
        self, principal: c.Principal, query: str, limit: int, filters: c.SearchFilters | None = None
    ) -> c.SearchResponse:
        await self._require(principal, "read")
        if not query.strip():
            raise InvalidInput("query is empty: say what to look for")
        if len(query) > c.MAX_QUERY_CHARS:
            raise InvalidInput(f"query is longer than {c.MAX_QUERY_CHARS} characters")
        filters = filters or c.SearchFilters()
        if filters.since and filters.until and filters.since > filters.until:
            raise InvalidInput("'since' is after 'until'")
        request = c.SearchRequest(
            user_id=principal.user_id, app=principal.app, query=query, limit=limit, filters=filters
        )
        found = await self._query(c.Query.SEARCH, request, c.SearchResponse)
        await self._accessed(principal, "search", [h.memory for h in found.hits], query)
        return found

    async def list_memories(
        self,
        principal: c.Principal,
        limit: int,
        cursor: str | None = None,
        filters: c.SearchFilters | None = None,
    ) -> c.ListResponse:
        """One page of the user's memories, newest first; `cursor` is a previous page's `next_offset`."""
        await self._require(principal, "read")
        request = c.ListRequest(
            user_id=principal.user_id, app=principal.app, limit=limit, offset=cursor, filters=filters
        )
        found = await self._query(c.Query.LIST, request, c.ListResponse)
        await self._accessed(principal, "list", found.memories, None)
        return found

    async def get(
        self, principal: c.Principal, memory_ids: list[str], log_access: bool = True
    ) -> c.GetResponse:
        await self._require(principal, "read")
        request = c.GetRequest(user_id=principal.user_id, app=principal.app, memory_ids=memory_ids)
        found = await self._query(c.Query.GET, request, c.GetResponse)
        if log_access:
            await self._accessed(principal, "get", found.memories, None)
        return found

    async def history(self, principal: c.Principal, memory_id: str) -> c.HistoryResponse:
        await self._require(principal, "read")
        (memory_id,) = c.canonical_ids([memory_id])
        request = c.HistoryRequest(user_id=principal.user_id, memory_id=memory_id)
        return await self._query(c.Query.HISTORY, request, c.HistoryResponse)

    async def profile(self, principal: c.Principal) -> c.ProfileResponse:
        """A short summary of the user from their current memories (the `memory://profile` resource)."""
        await self._require(principal, "read")
        request = c.ProfileRequest(user_id=principal.user_id, app=principal.app)
        found = await self._query(c.Query.PROFILE, request, c.ProfileResponse)
        await self._accessed_ids(principal, "list", found.memory_ids, None)
        return found

    async def graph(self, principal: c.Principal, entity: str, limit: int) -> c.GraphResponse:
        """An entity's relations in the user's graph, at most `limit`, current ones first."""
        await self._require(principal, "read")
        request = c.GraphRequest(user_id=principal.user_id, app=principal.app, entity=entity, limit=limit)
        found = await self._query(c.Query.GRAPH, request, c.GraphResponse)
        await self._accessed_ids(principal, "get", [e.memory_id for e in found.edges], None)
        return found

    async def delete(self, principal: c.Principal, memory_ids: list[str]) -> c.CommandResult | Accepted:
        """Delete the given memories; refuses the whole request if any id is not one of the user's."""
        await self._require(principal, "write")
        if not memory_ids:
            raise InvalidInput("memory_ids is empty: give the ids of the memories to delete")
        if len(memory_ids) > c.MAX_IDS_PER_REQUEST:
            raise InvalidInput(f"at most {c.MAX_IDS_PER_REQUEST} ids per request")
        ids = c.canonical_ids(memory_ids)
        found = await self.get(principal, ids, log_access=False)
        if found.missing:
            raise InvalidInput(f"no such memories: {', '.join(found.missing[:10])}; nothing was deleted")
        command = c.DeleteCommand(user_id=principal.user_id, app=principal.app, memory_ids=ids)
        return await self._submit(command)

    async def delete_all(self, principal: c.Principal) -> c.CommandResult | Accepted:
        await self._require(principal, "write")
        command = c.DeleteAllCommand(user_id=principal.user_id, app=principal.app)
        return await self._submit(command)
