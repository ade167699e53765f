"""The admin API's dependencies on a small app of their own: who the caller is (a key in either
header, or a session cookie whose writes need the CSRF token and our origin), the throttles, and the
scope aliases with the app's rules, all over a real nats-server's KV buckets."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from openmemory_admin.deps import (
    Admin,
    AdminContext,
    AdminReader,
    AdminWriter,
    Operator,
    Reader,
    Writer,
    authenticated,
    caller,
    context,
)
from openmemory_admin.session import COOKIE, CSRF_HEADER, open_session
from openmemory_core import contracts as c
from openmemory_core.apps import put_app
from openmemory_core.bus import Bus
from openmemory_core.errors import OpenMemoryError, RateLimited, Unauthorized
from openmemory_core.keys import create_key
from openmemory_core.ratelimit import FailedAuthThrottle, SharedRateLimiter
from openmemory_core.settings import Settings
from openmemory_testing import unique

REQUESTS_PER_MINUTE = 5
FAILURES_PER_MINUTE = 2
BAD_KEY = "om_00000000_" + "x" * 43  # the shape of a key, but no such key

probe = APIRouter()


@probe.get("/reader")
async def as_reader(principal: Reader) -> str:
    return principal.key_id


@probe.get("/writer")
async def as_writer(principal: Writer) -> str:
    return principal.key_id


@probe.get("/admin")
async def as_admin(principal: Admin) -> str:
    return principal.key_id


@probe.get("/admin-reader")
async def as_admin_reader(principal: AdminReader) -> str:
    return principal.key_id


@probe.get("/admin-writer")
async def as_admin_writer(principal: AdminWriter) -> str:
    return principal.key_id


@probe.get("/operator")
async def as_operator(principal: Operator) -> str:
    return principal.key_id


@probe.api_route("/caller", methods=["GET", "POST"])
async def who(principal: Annotated[c.Principal, Depends(caller)]) -> c.Principal:
    return principal


DEPENDENCIES = ["reader", "writer", "admin", "admin-reader", "admin-writer", "operator"]


def probe_app() -> FastAPI:
    app = FastAPI()
    app.include_router(probe)

    @app.exception_handler(OpenMemoryError)
    async def _error(_: Request, exc: OpenMemoryError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.http_status)

    return app


@pytest_asyncio.fixture
async def ctx(bus: Bus) -> AdminContext:
    """The service's context over the test's NATS; counters under names of this test alone, on a
    clock that stays in one minute."""
    rates, settings_kv, minute = await bus.rate_bucket(), await bus.settings_bucket(), time.time()
    return AdminContext(
        bus=bus, keys=await bus.keys_bucket(), apps=await bus.apps_bucket(), settings_kv=settings_kv,
        settings=Settings(), mcp_url="http://127.0.0.1:8765/mcp", secret=secrets.token_bytes(32),
        limiter=SharedRateLimiter(rates, REQUESTS_PER_MINUTE, unique("admin"), clock=lambda: minute),
        auth_failures=FailedAuthThrottle(rates, FAILURES_PER_MINUTE, unique("admin"), clock=lambda: minute),
    )  # fmt: skip


@pytest_asyncio.fixture
async def http(ctx: AdminContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the probe app, which finds the context in its state as the admin app does."""
    app = probe_app()
    app.state.ctx = ctx
    async with client_of(app) as client:
        yield client


def client_of(app: FastAPI, address: str = "10.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- the scope aliases ---------------------------------------------------------------------------


async def allowed(ctx: AdminContext, principal: c.Principal) -> set[str]:
    """The dependencies that let `principal` through (`caller` and `context` overridden)."""
    app = probe_app()
    app.dependency_overrides[context] = lambda: ctx
    app.dependency_overrides[caller] = lambda: principal
    passed = set()
    async with client_of(app) as client:
        for name in DEPENDENCIES:
            response = await client.get(f"/{name}")
            assert response.status_code in (200, 403), response.text
            if response.status_code == 200:
                assert response.json() == principal.key_id
                passed.add(name)
    return passed


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (("read",), {"reader"}),
        (("write",), {"writer"}),
        (("read", "write"), {"reader", "writer"}),
        (("admin",), {"reader", "writer", "admin", "admin-reader", "admin-writer"}),
        (("operator",), {"operator"}),
        (("admin", "operator"), set(DEPENDENCIES)),
    ],
)
async def test_each_scope_alias_refuses_a_key_without_its_scopes(
    ctx: AdminContext, scopes: tuple[str, ...], expected: set[str]
) -> None:
    principal = c.Principal(user_id=unique(), app="cursor", key_id=unique("key"), scopes=scopes)
    assert await allowed(ctx, principal) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # admin is not memory access: a paused app can still be resumed
        ({"paused": True}, {"admin"}),
        ({"can_read": False}, {"writer", "admin", "admin-writer"}),
        ({"can_write": False}, {"reader", "admin", "admin-reader"}),
    ],
)
async def test_the_apps_rules_apply_to_reading_and_writing_memories(
    ctx: AdminContext, rule: dict[str, bool], expected: set[str]
) -> None:
    principal = c.Principal(user_id=unique(), app="cursor", key_id=unique("key"), scopes=("admin",))
    await put_app(ctx.apps, c.AppRecord(user_id=principal.user_id, app="cursor").model_copy(update=rule))
    assert await allowed(ctx, principal) == expected
    other_app = principal.model_copy(update={"app": "claude"})  # the rule is this app's alone
    assert "reader" in await allowed(ctx, other_app) and "writer" in await allowed(ctx, other_app)


# ---- the caller: an API key ----------------------------------------------------------------------


async def test_a_key_in_either_header_is_the_caller(ctx: AdminContext, http: httpx.AsyncClient) -> None:
    user = unique()
    token, record = await create_key(ctx.keys, user, "cursor", ("read",))
    for headers in (bearer(token), {"X-API-Key": token}):
        response = await http.get("/caller", headers=headers)
        assert response.status_code == 200
        assert response.json() == {
            "user_id": user, "app": "cursor", "key_id": record.key_id, "scopes": ["read"],
        }  # fmt: skip
    assert (await http.get("/caller")).status_code == 401  # neither a key nor a session


async def test_bad_keys_from_one_address_are_refused_until_the_minute_ends(
    ctx: AdminContext, http: httpx.AsyncClient
) -> None:
    token, _ = await create_key(ctx.keys, unique())
    for _ in range(FAILURES_PER_MINUTE):
        assert (await http.get("/caller", headers=bearer(BAD_KEY))).status_code == 401
    refused = await http.get("/caller", headers=bearer(token))  # a good key, from that address
    assert refused.status_code == 429 and "failed" in refused.json()["detail"]
    app = probe_app()
    app.state.ctx = ctx
    async with client_of(app, address="10.0.0.2") as elsewhere:
        assert (await elsewhere.get("/caller", headers=bearer(token))).status_code == 200


async def test_each_key_is_held_to_its_rate_limit(ctx: AdminContext, http: httpx.AsyncClient) -> None:
    busy, _ = await create_key(ctx.keys, unique())
    calm, _ = await create_key(ctx.keys, unique())
    for _ in range(REQUESTS_PER_MINUTE):
        assert (await http.get("/caller", headers=bearer(busy))).status_code == 200
    limited = await http.get("/caller", headers=bearer(busy))
    assert limited.status_code == 429 and "this API key" in limited.json()["detail"]
    assert (await http.get("/caller", headers=bearer(calm))).status_code == 200


def plain_request(headers: dict[str, str], address: str) -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": "/", "query_string": b"", "scheme": "http",
         "server": ("testserver", 80), "client": (address, 40000),
         "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    )  # fmt: skip


async def test_a_recheck_of_the_caller_is_neither_throttled_nor_counted(ctx: AdminContext) -> None:
    """The activity stream asks again every few seconds: its failures must not lock its address out,
    nor others' failures from its address end it."""
    token, record = await create_key(ctx.keys, unique())
    for _ in range(FAILURES_PER_MINUTE + 2):
        with pytest.raises(Unauthorized):
            await authenticated(plain_request(bearer(BAD_KEY), "10.0.0.3"), ctx, throttled=False)
    await authenticated(plain_request(bearer(token), "10.0.0.3"), ctx)  # not counted: still let in
    for _ in range(FAILURES_PER_MINUTE):
        with pytest.raises(Unauthorized):
            await authenticated(plain_request(bearer(BAD_KEY), "10.0.0.4"), ctx)
    with pytest.raises(RateLimited):
        await authenticated(plain_request(bearer(token), "10.0.0.4"), ctx)
    again = await authenticated(plain_request(bearer(token), "10.0.0.4"), ctx, throttled=False)
    assert again.key_id == record.key_id


# ---- the caller: a dashboard session -------------------------------------------------------------


async def test_a_session_writes_only_with_its_csrf_token_and_from_our_origin(
    ctx: AdminContext, http: httpx.AsyncClient
) -> None:
    user = unique()
    token, record = await create_key(ctx.keys, user)
    cookie, session = await open_session(ctx.settings_kv, ctx.secret, record.key_id)
    signed_in = {"Cookie": f"{COOKIE}={cookie}"}
    csrf = {**signed_in, CSRF_HEADER: session.csrf}

    read = await http.get("/caller", headers=signed_in)
    assert read.status_code == 200 and read.json()["user_id"] == user
    for refused in (
        signed_in,
        {**signed_in, CSRF_HEADER: "not-the-token"},
        {**csrf, "Origin": "http://attacker.example"},
    ):
        response = await http.post("/caller", headers=refused)
        assert response.status_code == 403, refused
    for accepted in (csrf, {**csrf, "Origin": "http://testserver"}, bearer(token)):
        response = await http.post("/caller", headers=accepted)
        assert response.status_code == 200 and response.json()["user_id"] == user
