"""What every admin route depends on: the service's context, the caller and the scopes it needs.

The app factory puts one `AdminContext` in the app's state; routes take it as `Ctx` and the caller
as one of the scope aliases (`Reader`, `Writer`, `Admin`, `AdminReader`, `AdminWriter`,
`Operator`), each a dependency that authenticates the request and applies `apps.authorize`, the
one access check MCP uses too. Tests override `context` and `caller`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from openmemory_admin.session import COOKIE, CSRF_HEADER, current_session
from openmemory_admin.webhooks.delivery import Webhooks
from openmemory_core import contracts as c
from openmemory_core.apps import authorize
from openmemory_core.bus import Bus
from openmemory_core.errors import Forbidden, RateLimited, Unauthorized
from openmemory_core.keys import presented_token, principal_of, verify_key
from openmemory_core.kv import Bucket
from openmemory_core.ratelimit import FailedAuthThrottle, SharedRateLimiter, retry_after
from openmemory_core.settings import Settings

M = TypeVar("M", bound=BaseModel)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class AdminContext:
    bus: Bus
    keys: Bucket
    apps: Bucket
    settings_kv: Bucket
    settings: Settings
    mcp_url: str
    secret: bytes
    limiter: SharedRateLimiter
    auth_failures: FailedAuthThrottle  # failed sign-ins and bad keys per client address
    webhooks: Webhooks | None = None  # opened on first use (`routes.webhooks`) or by the component

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
    principal = await authenticated(request, ctx)
    wait = await ctx.limiter.take(principal.key_id)
    if wait:
        raise RateLimited(f"too many requests for this API key: retry in {retry_after(wait)} s", wait)
    return principal


async def authenticated(request: Request, ctx: AdminContext, throttled: bool = True) -> c.Principal:
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
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own and origin not in ctx.settings.admin.allowed_origins:
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


# ---- changes: commands to ingest, as MCP sends them ------------------------------------------------


class CommandOutcome(BaseModel):
    request_id: str
    status: Literal["applied", "accepted"]  # accepted: stored durably, applied shortly
    results: list[c.ChangeSummary] = Field(default_factory=list)


async def run_command(ctx: AdminContext, command: c.AnyCommand) -> CommandOutcome:
    """Send a command to ingest and wait a little for it: applied, or stored and applied shortly."""
    done = await ctx.bus.submit(command, ctx.command_wait, ctx.settings.gateway.max_backlog)
    if done is None:
        return CommandOutcome(request_id=command.request_id, status="accepted")
    return CommandOutcome(request_id=command.request_id, status="applied", results=done.results)
