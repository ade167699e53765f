"""The admin HTTP app: the REST API under /api/v1 and the dashboard's pages and assets.

The dashboard is server-sent HTML shells plus one small script (`static/app.js`) that calls the
REST API; every asset ships in the package (no CDN). A page without a valid session redirects to
the sign-in page. Every route, health and metrics included, answers only requests whose Host is in
`OPENMEMORY_ADMIN_ALLOWED_HOSTS` (421 otherwise), so a DNS-rebinding page cannot read them.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from openmemory_admin.deps import AdminContext
from openmemory_admin.routes import router
from openmemory_admin.session import COOKIE, current_session, session_secret
from openmemory_core.bus import Bus
from openmemory_core.errors import Busy, OpenMemoryError, RateLimited
from openmemory_core.hosts import PROBE_PATHS, host_allowed
from openmemory_core.keys import principal_of
from openmemory_core.ratelimit import FailedAuthThrottle, SharedRateLimiter, retry_after
from openmemory_core.settings import Settings

STATIC = Path(str(files("openmemory_admin") / "static"))

PAGES = {
    "/": ("overview", "Overview"),
    "/memories": ("memories", "Memories"),
    "/memory": ("memory", "Memory"),
    "/review": ("review", "Review"),
    "/consolidation": ("consolidation", "Consolidation"),
    "/apps": ("apps", "Apps"),
    "/connect": ("connect", "Connect a client"),
    "/keys": ("keys", "API keys"),
    "/settings": ("settings", "Settings"),
    "/data": ("data", "Export and import"),
    "/dead-letters": ("dead-letters", "Dead letters"),
    "/webhooks": ("webhooks", "Webhooks"),
}
NAV = [p for p in PAGES.items() if p[0] != "/memory"]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def layout(page: str, title: str, signed_in: bool) -> str:
    nav = "".join(
        f'<a href="{path}"{" aria-current=page" if name == page else ""}>{html.escape(label)}</a>'
        for path, (name, label) in NAV
    )
    header = (
        f'<nav>{nav}<span class="spacer"></span><span id="who"></span>'
        '<button id="sign-out" type="button">Sign out</button></nav>'
        if signed_in
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · OpenMemory</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/app.css"></head>
<body data-page="{page}"><header><a class="brand" href="/">OpenMemory</a>{header}</header>
<main><h1>{html.escape(title)}</h1><div id="flash" role="status"></div><div id="content"></div></main>
<script src="/static/app.js"></script></body></html>"""


async def build_context(bus: Bus, mcp_url: str, settings: Settings) -> AdminContext:
    settings_kv, rates = await bus.settings_bucket(), await bus.rate_bucket()
    return AdminContext(
        bus=bus, keys=await bus.keys_bucket(), apps=await bus.apps_bucket(), settings_kv=settings_kv,
        settings=settings, mcp_url=mcp_url, secret=await session_secret(settings_kv),
        limiter=SharedRateLimiter(rates, settings.admin.rate_limit_per_minute, "admin"),
        auth_failures=FailedAuthThrottle(rates, settings.admin.auth_failures_per_minute, "admin"),
    )  # fmt: skip


def create_app(ctx: AdminContext) -> FastAPI:
    app = FastAPI(
        title="OpenMemory admin",
        version="0.2.0",
        description="See and control your memory: the API behind the dashboard. Authenticate with an "
        "API key (`Authorization: Bearer om_…`) or a dashboard session.",
        docs_url=None,  # the interactive docs would load their scripts from a CDN: the schema is enough
        redoc_url=None,
    )
    app.state.ctx = ctx

    @app.exception_handler(OpenMemoryError)
    async def _error(_: Request, exc: OpenMemoryError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="OpenMemory"'} if exc.http_status == 401 else {}
        if isinstance(exc, Busy):
            headers["Retry-After"] = str(Busy.retry_after_seconds)
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = retry_after(exc.retry_after)
        return JSONResponse({"detail": exc.message}, status_code=exc.http_status, headers=headers)

    @app.middleware("http")
    async def _host(request: Request, call_next: object) -> Response:
        if request.url.path not in PROBE_PATHS and not host_allowed(
            request.headers.get("host"), ctx.settings.admin.allowed_hosts
        ):
            return JSONResponse(
                {"detail": "misdirected request: this server does not answer to that Host"}, 421
            )
        response: Response = await call_next(request)  # type: ignore[operator]
        return response

    @app.middleware("http")
    async def _headers(request: Request, call_next: object) -> Response:
        response: Response = await call_next(request)  # type: ignore[operator]
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def signed_in(request: Request) -> bool:
        ctx: AdminContext = request.app.state.ctx
        try:
            session = await current_session(ctx.settings_kv, ctx.secret, request.cookies.get(COOKIE))
            await principal_of(ctx.keys, session.key_id)
        except OpenMemoryError:
            return False
        return True

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login() -> str:
        return layout("login", "Sign in", signed_in=False)

    for path, (name, title) in PAGES.items():

        async def page(request: Request, name: str = name, title: str = title) -> Response:
            if not await signed_in(request):
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            return HTMLResponse(layout(name, title, signed_in=True))

        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)

    return app
