"""The admin REST API (`/api/v1`): what the dashboard shows and does, for any HTTP client too.

Every route needs a caller: an API key (`Authorization: Bearer`, as for MCP) or a dashboard session
(cookie + CSRF token on writes). Reading needs the `read` scope, changing memories `write`, and
apps, keys, export/import and dead letters `admin`; the system's settings need `operator`. The
app's pause and read/write rules apply as on MCP (one check, `apps.authorize`). Everything is the
caller's own user.
Changes go to ingest as commands, like MCP's; reads go to search.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

import nats.errors
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from nats.aio.msg import Msg
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from openmemory_admin import portable
from openmemory_admin.session import (
    COOKIE,
    CSRF_HEADER,
    RECHECK_SECONDS,
    current_session,
    end_session,
    open_session,
    read,
)
from openmemory_core import contracts as c
from openmemory_core import stored_settings
from openmemory_core.apps import app_records, authorize, get_app, put_app
from openmemory_core.bus import Bus
from openmemory_core.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    OpenMemoryError,
    RateLimited,
    Unauthorized,
)
from openmemory_core.keys import (
    create_key,
    list_keys,
    presented_token,
    principal_of,
    revoke_key,
    validate_name,
    verify_key,
)
from openmemory_core.ratelimit import FailedAuthThrottle, SharedRateLimiter, retry_after
from openmemory_core.settings import Settings

M = TypeVar("M", bound=BaseModel)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class AdminContext:
    bus: Bus
    keys: KeyValue
    apps: KeyValue
    settings_kv: KeyValue
    settings: Settings
    mcp_url: str
    secret: bytes
    limiter: SharedRateLimiter
    auth_failures: FailedAuthThrottle  # failed sign-ins and bad keys per client address

    @property
    def query_wait(self) -> float:
        return self.settings.gateway.query_timeout_seconds

    @property
    def command_wait(self) -> float:
        return self.settings.gateway.add_wait_seconds

    async def ask(self, query: c.Query, request: BaseModel, response: type[M]) -> M:
        return await self.bus.query(query, request, response, self.query_wait)


def context(request: Request) -> AdminContext:
    ctx: AdminContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AdminContext, Depends(context)]


async def caller(request: Request, ctx: Ctx) -> c.Principal:
    """The API key in the headers, else the session cookie (with CSRF checks on writes); each key
    (however presented) within its rate limit."""
    principal = await _authenticated(request, ctx)
    wait = await ctx.limiter.take(principal.key_id)
    if wait:
        raise RateLimited(f"too many requests for this API key: retry in {retry_after(wait)} s", wait)
    return principal


async def _authenticated(request: Request, ctx: AdminContext, throttled: bool = True) -> c.Principal:
    """The key presented, else the open session of the cookie. A bad key counts against the client's
    address, which is refused once it failed too often this minute (`throttled`: not when a stream
    re-checks the caller it already let in)."""
    address = request.client.host if request.client else ""
    if throttled:
        await ctx.auth_failures.admit(address)
    token = presented_token(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if token is not None:
        try:
            return await verify_key(ctx.keys, token)
        except Unauthorized:
            if throttled:
                await ctx.auth_failures.failed(address)
            raise
    session = await current_session(ctx.settings_kv, ctx.secret, request.cookies.get(COOKIE))
    if request.method not in SAFE_METHODS:
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf):
            raise Forbidden("the CSRF token is missing or wrong: reload the page")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise Forbidden("a write from another origin is refused")
    return await principal_of(ctx.keys, session.key_id)


def _scope(*names: str) -> Any:
    """A dependency: the caller, if the key has these scopes and the app may do this (`authorize`,
    the one check that MCP uses too)."""

    async def check(principal: Annotated[c.Principal, Depends(caller)], ctx: Ctx) -> c.Principal:
        await authorize(ctx.apps, principal, *names)
        return principal

    return check


Reader = Annotated[c.Principal, Depends(_scope("read"))]
Writer = Annotated[c.Principal, Depends(_scope("write"))]
Admin = Annotated[c.Principal, Depends(_scope("admin"))]
#: Administration that hands out or takes in memories: the app's read or write rule applies too.
AdminReader = Annotated[c.Principal, Depends(_scope("admin", "read"))]
AdminWriter = Annotated[c.Principal, Depends(_scope("admin", "write"))]
#: The system's settings, shared by every user.
Operator = Annotated[c.Principal, Depends(_scope(c.OPERATOR_SCOPE))]
Name = Annotated[str, Field(pattern=c.ID_NAME_PATTERN)]

router = APIRouter(prefix="/api/v1")


# ---- session ---------------------------------------------------------------------------------------


class SignIn(BaseModel):
    api_key: str = Field(min_length=1, max_length=200)


class SessionInfo(BaseModel):
    user_id: str
    app: str
    scopes: list[str]
    csrf_token: str


@router.post("/session", tags=["session"])
async def sign_in(body: SignIn, response: Response, request: Request, ctx: Ctx) -> SessionInfo:
    """Sign in to the dashboard with an API key; sets the session cookie. Failed sign-ins are
    counted per client address, which is refused (429) once it failed too often this minute."""
    address = request.client.host if request.client else ""
    await ctx.auth_failures.admit(address)
    try:
        principal = await verify_key(ctx.keys, body.api_key.strip())
    except Unauthorized:
        await ctx.auth_failures.failed(address)
        raise
    cookie, session = await open_session(ctx.settings_kv, ctx.secret, principal.key_id)
    response.set_cookie(
        COOKIE, cookie, httponly=True, samesite="strict", secure=request.url.scheme == "https",
        max_age=int(session.expires - datetime.now().timestamp()), path="/",
    )  # fmt: skip
    return SessionInfo(
        user_id=principal.user_id, app=principal.app, scopes=list(principal.scopes), csrf_token=session.csrf
    )


@router.get("/session", tags=["session"])
async def whoami(request: Request, ctx: Ctx) -> SessionInfo:
    """The signed-in user and the CSRF token the dashboard sends with writes."""
    session = await current_session(ctx.settings_kv, ctx.secret, request.cookies.get(COOKIE))
    principal = await principal_of(ctx.keys, session.key_id)
    return SessionInfo(
        user_id=principal.user_id, app=principal.app, scopes=list(principal.scopes), csrf_token=session.csrf
    )


@router.delete("/session", tags=["session"], status_code=204)
async def sign_out(
    _: Annotated[c.Principal, Depends(caller)], request: Request, response: Response, ctx: Ctx
) -> None:
    """Sign out: the session ends on the server, so its cookie is refused from now on everywhere."""
    with contextlib.suppress(Unauthorized):  # signed in by an API key: no session to end
        await end_session(ctx.settings_kv, read(ctx.secret, request.cookies.get(COOKIE)))
    response.delete_cookie(COOKIE, path="/")


# ---- memories -------------------------------------------------------------------------------------


class CommandOutcome(BaseModel):
    request_id: str
    status: Literal["applied", "accepted"]  # accepted: stored durably, applied shortly
    results: list[c.ChangeSummary] = Field(default_factory=list)


async def _run(ctx: AdminContext, command: c.AnyCommand) -> CommandOutcome:
    done = await ctx.bus.submit(command, ctx.command_wait, ctx.settings.gateway.max_backlog)
    if done is None:
        return CommandOutcome(request_id=command.request_id, status="accepted")
    return CommandOutcome(request_id=command.request_id, status="applied", results=done.results)


async def _own(ctx: AdminContext, principal: c.Principal, ids: list[str]) -> list[c.Memory]:
    """The caller's memories with these ids; any other id refuses the whole request."""
    ids = c.canonical_ids(ids)
    found = await ctx.ask(c.Query.GET, c.GetRequest(user_id=principal.user_id, memory_ids=ids), c.GetResponse)
    if found.missing:
        raise NotFound(f"no such memories: {', '.join(found.missing[:10])}; nothing was changed")
    return found.memories


@router.get("/memories", tags=["memories"])
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


class MemoryDetail(BaseModel):
    memory: c.Memory | None
    history: list[c.MemoryEvent]
    access_log: list[c.AccessRecord]


@router.get("/memories/{memory_id}", tags=["memories"])
async def memory_detail(memory_id: str, principal: Reader, ctx: Ctx) -> MemoryDetail:
    """One memory with its history (every change) and its access log (which app saw it, when)."""
    (memory_id,) = c.canonical_ids([memory_id])
    found = await ctx.ask(
        c.Query.HISTORY, c.HistoryRequest(user_id=principal.user_id, memory_id=memory_id), c.HistoryResponse
    )
    log = [a for a in await ctx.bus.accesses_of(principal.user_id) if memory_id in a.memory_ids]
    return MemoryDetail(memory=found.memory, history=found.events, access_log=log[::-1][:200])


class Related(BaseModel):
    memories: list[c.ScoredMemory]
    graph: list[c.GraphResponse]


@router.get("/memories/{memory_id}/related", tags=["memories"])
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


class Edit(BaseModel):
    text: str = Field(min_length=1, max_length=c.MAX_TEXT_CHARS)


@router.patch("/memories/{memory_id}", tags=["memories"])
async def edit(memory_id: str, body: Edit, principal: Writer, ctx: Ctx) -> CommandOutcome:
    """Change a memory's text: ingest re-embeds it and updates the graph."""
    (memory,) = await _own(ctx, principal, [memory_id])
    if not body.text.strip():
        raise InvalidInput("the text is empty")
    command = c.EditCommand(user_id=principal.user_id, app=principal.app, memory_id=memory.id, text=body.text)
    return await _run(ctx, command)


@router.delete("/memories/{memory_id}", tags=["memories"])
async def delete_one(memory_id: str, principal: Writer, ctx: Ctx) -> CommandOutcome:
    (memory,) = await _own(ctx, principal, [memory_id])
    return await _run(
        ctx, c.DeleteCommand(user_id=principal.user_id, app=principal.app, memory_ids=[memory.id])
    )


class Bulk(BaseModel):
    action: Literal["pause", "resume", "archive", "delete"]
    ids: list[str] = Field(min_length=1, max_length=c.MAX_IDS_PER_REQUEST)


STATE_OF: dict[str, Literal[c.MemoryState.ACTIVE, c.MemoryState.PAUSED, c.MemoryState.ARCHIVED]] = {
    "pause": c.MemoryState.PAUSED,
    "resume": c.MemoryState.ACTIVE,
    "archive": c.MemoryState.ARCHIVED,
}


@router.post("/memories/actions", tags=["memories"])
async def bulk(body: Bulk, principal: Writer, ctx: Ctx) -> CommandOutcome:
    """Pause, resume (make active), archive or delete one or many memories. Only active memories
    are found by search; paused and archived ones stay listed here."""
    ids = [m.id for m in await _own(ctx, principal, body.ids)]
    if body.action == "delete":
        return await _run(ctx, c.DeleteCommand(user_id=principal.user_id, app=principal.app, memory_ids=ids))
    command = c.SetStateCommand(
        user_id=principal.user_id, app=principal.app, memory_ids=ids, state=STATE_OF[body.action]
    )
    return await _run(ctx, command)


# ---- apps -----------------------------------------------------------------------------------------


class AppView(BaseModel):
    app: str
    memories_created: int
    memories_accessed: int
    last_accessed: datetime | None
    paused: bool
    can_read: bool
    can_write: bool


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


@router.get("/apps", tags=["apps"])
async def apps(principal: Reader, ctx: Ctx) -> list[AppView]:
    """The MCP clients that wrote or read this user's memories, or were configured, with counts."""
    return await _apps(ctx, principal.user_id, await ctx.bus.accesses_of(principal.user_id))


class AppDetail(BaseModel):
    app: AppView
    recent_memories: list[c.Memory]
    recent_access: list[c.AccessRecord]


@router.get("/apps/{app}", tags=["apps"])
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


class AppChange(BaseModel):
    paused: bool | None = None
    can_read: bool | None = None
    can_write: bool | None = None


@router.patch("/apps/{app}", tags=["apps"])
async def change_app(app: str, body: AppChange, principal: Admin, ctx: Ctx) -> c.AppRecord:
    """Pause or resume an app, or set its read and write permission. Gateway and search refuse a
    paused app, or one without the permission, from the next call on."""
    validate_name("app", app)
    record = await get_app(ctx.apps, principal.user_id, app)
    changes = body.model_dump(exclude_none=True)
    return await put_app(ctx.apps, record.model_copy(update=changes))


# ---- stats, categories, graph, activity ------------------------------------------------------------


@router.get("/stats", tags=["stats"])
async def stats(principal: Reader, ctx: Ctx) -> c.StatsResponse:
    """Totals by state, app, category and day."""
    return await ctx.ask(c.Query.STATS, c.StatsRequest(user_id=principal.user_id), c.StatsResponse)


@router.get("/categories", tags=["stats"])
async def categories(principal: Reader, ctx: Ctx) -> list[c.Count]:
    return (await stats(principal, ctx)).by_category


@router.get("/graph", tags=["graph"])
async def graph(
    principal: Reader,
    ctx: Ctx,
    entity: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
) -> dict[str, Any]:
    """Without `entity`: the user's whole graph (entities and relations). With it: that entity's
    relations, with their type, the memory they came from and when they held (`valid_to` is null
    while a relation is current). `entity=User` is the user themself."""
    if entity is None:
        whole = await ctx.ask(
            c.Query.USER_GRAPH, c.UserGraphRequest(user_id=principal.user_id), c.UserGraphResponse
        )
        return whole.model_dump(mode="json")
    found = await ctx.ask(
        c.Query.GRAPH, c.GraphRequest(user_id=principal.user_id, entity=entity), c.GraphResponse
    )
    return {
        "entity": found.entity,
        "relations": [{**e.model_dump(), "current": e.current} for e in found.edges],
    }


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


@router.get("/activity", tags=["activity"])
async def activity(
    principal: Reader, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[Activity]:
    """The latest changes to the user's memories, newest first."""
    events = await ctx.bus.events_of(principal.user_id)
    return [_activity(e) for e in events[::-1][:limit]]


@router.get("/activity/stream", tags=["activity"])
async def activity_stream(principal: Reader, ctx: Ctx, request: Request) -> StreamingResponse:
    """Server-sent events: one `data:` line (an Activity as JSON) per change, as it happens. The
    caller is checked again before changes are sent and every few seconds: the stream ends once
    its key is revoked or expires, its session is signed out, or its app loses read access."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

    async def on_event(msg: Msg) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(msg.data)

    sub = await ctx.bus.nc.subscribe(c.event_subject(principal.user_id), cb=on_event)

    async def still_allowed() -> bool:
        try:
            now = await _authenticated(request, ctx, throttled=False)
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


# ---- API keys ---------------------------------------------------------------------------------------


class KeyView(BaseModel):
    prefix: str
    app: str
    scopes: list[str]
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


def _key_view(record: c.ApiKeyRecord) -> KeyView:
    return KeyView.model_validate(record.model_dump(include=set(KeyView.model_fields)))


class NewKey(BaseModel):
    app: str = Field(default=c.ANY_APP, max_length=128)
    scopes: list[Literal["read", "write", "admin", "operator"]] = Field(
        default=["read", "write"], min_length=1
    )
    label: str = Field(default="", max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class CreatedKey(BaseModel):
    api_key: str  # shown this once; only its hash is stored
    key: KeyView


@router.get("/keys", tags=["keys"])
async def keys(principal: Admin, ctx: Ctx) -> list[KeyView]:
    """The user's API keys: prefix, app, scopes, last use; never the keys themselves."""
    return [_key_view(r) for r in await list_keys(ctx.keys, principal.user_id)]


@router.post("/keys", tags=["keys"], status_code=201)
async def new_key(body: NewKey, principal: Admin, ctx: Ctx) -> CreatedKey:
    """Mint a key for the caller's user, with at most the caller's own scopes."""
    beyond = [s for s in body.scopes if not principal.can(s)]
    if beyond:
        raise Forbidden(f"a key cannot grant scopes it does not have: {', '.join(beyond)}")
    expires = c.now() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, record = await create_key(
        ctx.keys, principal.user_id, body.app, tuple(dict.fromkeys(body.scopes)), body.label, expires
    )
    return CreatedKey(api_key=token, key=_key_view(record))


@router.delete("/keys/{prefix}", tags=["keys"])
async def revoke(prefix: str, principal: Admin, ctx: Ctx) -> KeyView:
    """Revoke one of the user's keys: refused from the next request on, on every replica."""
    return _key_view(await revoke_key(ctx.keys, prefix, principal.user_id))


# ---- connect a client ---------------------------------------------------------------------------------


CLIENTS = ("claude", "cursor", "windsurf", "cline", "vscode", "claude-code")


class Connect(BaseModel):
    client: Literal["claude", "cursor", "windsurf", "cline", "vscode", "claude-code"]


class Snippets(BaseModel):
    client: str
    api_key: str
    url: str
    snippets: dict[str, str]


@router.post("/connect", tags=["keys"], status_code=201)
async def connect(body: Connect, principal: Admin, ctx: Ctx) -> Snippets:
    """Mint a read/write key bound to one client app, and the install snippets that use it."""
    token, _ = await create_key(
        ctx.keys, principal.user_id, body.client, ("read", "write"), f"{body.client} (dashboard)"
    )
    return Snippets(
        client=body.client, api_key=token, url=ctx.mcp_url, snippets=snippets(ctx.mcp_url, body.client, token)
    )


def snippets(url: str, client: str, token: str) -> dict[str, str]:
    header = f"Bearer {token}"
    remote = {"command": "npx", "args": ["-y", "mcp-remote", url, "--header", f"Authorization:{header}"]}
    http = {"url": url, "headers": {"Authorization": header}}
    forms = {
        "claude": ("claude_desktop_config.json", {"mcpServers": {"openmemory": remote}}),
        "cursor": ("~/.cursor/mcp.json", {"mcpServers": {"openmemory": http}}),
        "windsurf": (
            "~/.codeium/windsurf/mcp_config.json",
            {"mcpServers": {"openmemory": {"serverUrl": url, "headers": http["headers"]}}},
        ),
        "cline": (
            "cline_mcp_settings.json",
            {"mcpServers": {"openmemory": {**http, "type": "streamableHttp"}}},
        ),
        "vscode": (".vscode/mcp.json", {"servers": {"openmemory": {"type": "http", **http}}}),
    }
    out = {name: f"// {path}\n{json.dumps(config, indent=2)}" for name, (path, config) in forms.items()}
    out["claude-code"] = (
        f'claude mcp add --transport http openmemory {url} --header "Authorization: {header}"'
    )
    out["npx install-mcp"] = (
        f'npx install-mcp {url} --client {client} --oauth no --header "Authorization: {header}"'
    )
    return out


# ---- settings -----------------------------------------------------------------------------------------


class SettingsChange(BaseModel):
    llm: dict[str, Any] = Field(default_factory=dict)
    embedder: dict[str, Any] = Field(default_factory=dict)


LLM_FIELDS = frozenset(
    {"extractor", "base_url", "api_key", "model", "custom_instructions", "similar_memories"}
)
EMBEDDER_FIELDS = frozenset({"provider", "model", "base_url", "api_key", "dimensions"})


async def _settings_view(ctx: AdminContext) -> dict[str, Any]:
    stored, _ = await stored_settings.load(ctx.settings_kv)
    llm = stored_settings.effective_llm(ctx.settings, stored)
    embedder = stored_settings.effective_embedder(ctx.settings, stored)
    return {
        "llm": {k: v for k, v in stored_settings.public(llm).items() if k in LLM_FIELDS | {"api_key_set"}},
        "embedder": {
            k: v
            for k, v in stored_settings.public(embedder).items()
            if k in EMBEDDER_FIELDS | {"api_key_set"}
        },
        "applies": {
            "llm": "to ingest within seconds",
            "embedder": "within seconds: ingest and search reload, and stored memories are re-embedded",
        },
    }


@router.get("/settings", tags=["settings"])
async def get_settings(_: Operator, ctx: Ctx) -> dict[str, Any]:
    """The extractor/LLM and embedder settings in effect. API keys are never returned: only
    whether one is set."""
    return await _settings_view(ctx)


@router.put("/settings", tags=["settings"])
async def put_settings(body: SettingsChange, _: Operator, ctx: Ctx) -> dict[str, Any]:
    """Save settings. The LLM part applies to ingest without a restart. An `api_key` of null keeps
    the stored one, "" clears it."""
    unknown = (set(body.llm) - LLM_FIELDS) | (set(body.embedder) - EMBEDDER_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown settings: {', '.join(sorted(unknown))}")
    changes = stored_settings.StoredSettings(llm=body.llm, embedder=body.embedder)
    await stored_settings.save(ctx.settings_kv, ctx.settings, changes)
    return await _settings_view(ctx)


# ---- export / import ------------------------------------------------------------------------------------


@router.get("/export", tags=["data"])
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


class Imported(BaseModel):
    source: str
    memories: int
    batches: int
    accepted: int  # batches stored but not applied within the wait; they will be


@router.post("/import", tags=["data"])
async def import_file(request: Request, principal: AdminWriter, ctx: Ctx) -> Imported:
    """Upload an export as the request body: ours (JSON) or an OpenMemory export zip. The file is
    checked whole first: a malformed one imports nothing."""
    length = int(request.headers.get("content-length") or 0)
    if length > portable.MAX_UPLOAD_BYTES:
        raise InvalidInput(f"the upload is larger than {portable.MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > portable.MAX_UPLOAD_BYTES:
            raise InvalidInput(f"the upload is larger than {portable.MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    # Parsing and sizing up to 100,000 memories is CPU work: off the event loop, which serves others.
    source, memories = await asyncio.to_thread(portable.parse_upload, bytes(data))
    batches = await asyncio.to_thread(portable.batches, memories)
    accepted = 0
    for batch in batches:
        outcome = await _run(
            ctx, c.ImportCommand(user_id=principal.user_id, app=principal.app, memories=batch)
        )
        accepted += outcome.status == "accepted"
    return Imported(source=source, memories=len(memories), batches=len(batches), accepted=accepted)


# ---- dead letters -----------------------------------------------------------------------------------------


class DeadLetterView(BaseModel):
    sequence: int
    request_id: str
    kind: str
    error: str
    at: datetime
    payload: dict[str, Any] | str


def _letters_of(letters: list[tuple[int, c.DeadLetter]], principal: c.Principal) -> list[DeadLetterView]:
    """The caller's own parked commands (a command names its user); never another user's."""
    views = []
    for sequence, letter in letters:
        try:
            payload = json.loads(letter.payload)
            command = payload.get("command", {})
        except (ValueError, AttributeError):
            continue
        if not isinstance(command, dict) or command.get("user_id") != principal.user_id:
            continue
        views.append(
            DeadLetterView(
                sequence=sequence, request_id=letter.request_id, kind=str(command.get("kind", "?")),
                error=letter.error, at=letter.at, payload=payload,
            )
        )  # fmt: skip
    return views


@router.get("/dead-letters", tags=["dead letters"])
async def dead_letters(principal: AdminReader, ctx: Ctx) -> list[DeadLetterView]:
    """Commands of this user that could not be applied, with the reason."""
    return _letters_of(await ctx.bus.dead_letters(), principal)


async def _letter(ctx: AdminContext, principal: c.Principal, sequence: int) -> c.DeadLetter:
    for seq, letter in await ctx.bus.dead_letters():
        if seq == sequence and _letters_of([(seq, letter)], principal):
            return letter
    raise NotFound(f"no dead letter {sequence} for this user")


@router.post("/dead-letters/{sequence}/retry", tags=["dead letters"])
async def retry(sequence: int, principal: AdminWriter, ctx: Ctx) -> dict[str, str]:
    """Send the command to ingest again and take it off the list."""
    letter = await _letter(ctx, principal, sequence)
    await ctx.bus.retry_dead_letter(sequence, letter)
    return {"request_id": letter.request_id, "status": "resent"}


@router.delete("/dead-letters/{sequence}", tags=["dead letters"], status_code=204)
async def discard(sequence: int, principal: AdminWriter, ctx: Ctx) -> None:
    await _letter(ctx, principal, sequence)
    await ctx.bus.discard_dead_letter(sequence)


@router.get("/status", tags=["status"])
async def status(ctx: Ctx) -> dict[str, object]:
    """Whether the admin service reaches the bus (no sign-in needed)."""
    return {"bus_connected": ctx.bus.connected}
