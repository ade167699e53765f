"""The gateway's HTTP front: authentication, and the MCP endpoints under every URL form.

- `/mcp` — streamable HTTP (stateless, so replicas need no session affinity).
- `/sse` + `/messages/` — legacy SSE.
- `/mcp/{client}/http/{user}` and `/mcp/{client}/sse/{user}` (+ `/mcp/{client}/messages/`) —
  OpenMemory's forms. The key decides the user; the path's client becomes the app if the key allows.

Every streamable HTTP form serves every revision the SDK does: 2026-07-28's self-contained requests
(no `initialize`, no session; the SDK refuses `Mcp-Method`/`Mcp-Name` headers that disagree with
the body) and the handshake revisions 2024-11-05 to 2025-11-25; SSE serves the handshake ones.
Nothing here reads those headers: the user, app and rate limit come from the key and the path
only, checked before the SDK sees the request.

A legacy SSE session answers only the principal (key, user and app) that opened it. Failed
authentications are throttled per client address. Every other route (health, metrics, OAuth
metadata) answers only the allowed Host headers, like the MCP endpoints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.transport_security import TransportSecuritySettings
from nats.js.kv import KeyValue
from pydantic import AnyHttpUrl
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openmemory_core.contracts import Principal
from openmemory_core.errors import OpenMemoryError, Unauthorized
from openmemory_core.hosts import PROBE_PATHS, host_allowed
from openmemory_core.keys import KEY_PREFIX, presented_token, validate_name, verify_key
from openmemory_core.ratelimit import (
    FailedAuthThrottle,
    RefusalLog,
    SharedRateLimiter,
    retry_after,
)
from openmemory_core.settings import GatewaySettings, OAuthSettings
from openmemory_core.telemetry import AUTH_FAILURES
from openmemory_gateway.oauth import IntrospectionTokenVerifier, principal_of_token
from openmemory_gateway.service import MemoryGateway
from openmemory_gateway.stages import timed
from openmemory_gateway.tools import build_mcp

_OPENMEMORY_FORM = re.compile(r"/mcp/(?P<client>[^/]+)/(?P<kind>sse|http|messages)(?:/(?P<user>[^/]*))?/?")
#: The session id in the first event of a legacy SSE stream (`endpoint`: where to post messages).
_SSE_SESSION = re.compile(rb"[?&]session_id=([0-9a-fA-F]{32})")


@dataclass(frozen=True)
class McpRoute:
    kind: str  # "http", "sse" or "messages"
    client: str | None
    root_path: str


def route_of(path: str) -> McpRoute | None:
    """Which MCP endpoint a path is, in any of the supported forms; None for other paths."""
    if path in ("/mcp", "/mcp/"):
        return McpRoute("http", None, "")
    if path == "/sse":
        return McpRoute("sse", None, "")
    if path.startswith("/messages"):
        return McpRoute("messages", None, "")
    match = _OPENMEMORY_FORM.fullmatch(path)  # `$` would also match before a final newline
    if match is None:
        return None
    kind, client = match["kind"], match["client"]
    if kind == "messages" and match["user"]:
        return None
    return McpRoute(kind, client, f"/mcp/{client}")


def _token(scope: Scope) -> str | None:
    headers = Headers(scope=scope)
    return presented_token(headers.get("authorization"), headers.get("x-api-key"))


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _session_id(scope: Scope) -> str | None:
    """The legacy SSE session a message post names, spelt as the transport spells it (it parses
    the parameter as a UUID, so `ABC…` and `abc…` are one session); None when it names none."""
    value = QueryParams(scope.get("query_string", b"").decode("latin-1")).get("session_id")
    try:
        return uuid.UUID(hex=value).hex if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Owner:
    """Who opened a legacy SSE session: only the same key, as the same user and app, may post to it."""

    key_id: str
    user_id: str
    app: str

    @classmethod
    def of(cls, principal: Principal) -> Owner:
        return cls(principal.key_id, principal.user_id, principal.app)


#: The JSON-RPC code of a call refused before any tool ran, by HTTP status: in the implementation's
#: "server error" range, clear of the codes MCP gives a meaning (-32000 connection closed, -32001
#: request timeout, -32002 resource not found, -32020 to -32022 header, capability and version
#: mismatches, which an auto-negotiating client acts on, -32042 URL elicitation). The status itself
#: travels as `data.http_status`.
REFUSAL_CODES = {401: -32010, 403: -32003, 404: -32004, 413: -32013, 422: -32012, 429: -32014, 503: -32015}
OTHER_REFUSAL = -32019


def refusal_code(status: int) -> int:
    return REFUSAL_CODES.get(status, OTHER_REFUSAL)


async def _refuse(
    send: Send,
    status: int,
    message: str,
    wait: float | None = None,
    metadata_url: str | None = None,
    call: bool = False,
) -> None:
    """An HTTP refusal. To an MCP call (`call`) the body is a JSON-RPC error with the message: the
    request is refused before its body is read, so its id is null, and the MCP client answers the
    pending call with it; any other body reaches the client's model as "Server returned an error
    response", without the reason. Elsewhere `{"error": message}`."""
    if call:
        data: dict[str, int] = {"http_status": status}
        if wait is not None:
            data["retry_after_seconds"] = int(retry_after(wait))
        error = {"code": refusal_code(status), "message": message, "data": data}
        body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
    else:
        body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        challenge = 'Bearer realm="OpenMemory"'
        if metadata_url:  # RFC 9728: tells an OAuth-capable client where to find the authorization server
            challenge += f', resource_metadata="{metadata_url}"'
        headers.append((b"www-authenticate", challenge.encode()))
    if wait is not None:
        headers.append((b"retry-after", retry_after(wait).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_rate_limited(send: Send, per_minute: int, wait: float) -> None:
    """429 with Retry-After for HTTP clients and the wait in the message for the client's model."""
    message = (
        f"too many requests for this API key (its limit is {per_minute} per minute): nothing was done. "
        f"Wait {retry_after(wait)} seconds, then retry this same call; retrying sooner is refused again."
    )
    await _refuse(send, 429, message, wait, call=True)


def _key_label(scope: Scope, principal: Principal) -> str:
    """How logs name a key: its public prefix (`om_1a2b3c4d`), never the secret part."""
    token = _token(scope) or ""
    if token.startswith(KEY_PREFIX):
        return token[: len(KEY_PREFIX) + 8]
    return f"oauth:{principal.key_id[:8]}"


class _NoSessionTermination(logging.Filter):
    """The SDK logs "Terminating session: None" at info for every stateless request (each is a
    session of its own): drop that line, and only that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and record.getMessage().startswith("Terminating session"))


def quiet_session_termination() -> None:
    """Install the filter on the SDK's streamable HTTP logger, once per process."""
    sdk = logging.getLogger("mcp.server.streamable_http")
    if not any(isinstance(f, _NoSessionTermination) for f in sdk.filters):
        sdk.addFilter(_NoSessionTermination())


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the connection's own messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class GatewayFront:
    """ASGI entry: MCP paths are authenticated and routed; everything else goes to the FastAPI app."""

    def __init__(
        self,
        api: FastAPI,
        streamable: ASGIApp,
        sse: ASGIApp,
        keys: KeyValue,
        rates: KeyValue,
        settings: GatewaySettings,
    ) -> None:
        self.api = api
        self.streamable = streamable
        self.sse = sse
        self.keys = keys
        self.max_body = settings.max_request_bytes
        self.allowed_hosts = settings.allowed_hosts
        self.per_key_limit = settings.per_key_limit
        self.limiter = SharedRateLimiter(rates, self.per_key_limit, "gateway")
        self.refusals = RefusalLog("gateway")
        self.auth_failures = FailedAuthThrottle(rates, settings.auth_failures_per_minute, "gateway")
        #: The open legacy SSE sessions of this process (the transport keeps them in memory too).
        self.sse_owners: dict[str, Owner] = {}
        self.verifier: IntrospectionTokenVerifier | None = None
        self.oauth_scopes: list[str] = []
        self.metadata_url: str | None = None

    async def _principal(self, scope: Scope, route: McpRoute) -> Principal:
        """An OpenMemory API key, or, with OAuth on, any other bearer token via introspection."""
        token = _token(scope)
        if self.verifier is None or token is None or token.startswith(KEY_PREFIX):
            return await verify_key(self.keys, token, route.client)
        access = await self.verifier.verify_token(token)
        if access is None:
            raise Unauthorized("the OAuth token is not valid (inactive, expired, or for another resource)")
        return principal_of_token(access, self.oauth_scopes)

    def add_route(self, path: str, endpoint: Any, methods: list[str] | None = None) -> None:
        """Non-MCP routes (health, metrics) belong to the FastAPI app."""
        self.api.add_route(path, endpoint, methods=methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_of(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            # The MCP transports check Host (and Origin) themselves; everything else is checked here.
            if (
                scope["type"] == "http"
                and scope["path"] not in PROBE_PATHS
                and not host_allowed(Headers(scope=scope).get("host"), self.allowed_hosts)
            ):
                await _refuse(send, 421, "misdirected request: this server does not answer to that Host")
                return
            await self.api(scope, receive, send)
            return
        if route.kind == "http":  # timed whole: the `request` stage (`stages`)
            with timed("request"):
                await self._mcp(scope, receive, send, route)
            return
        await self._mcp(scope, receive, send, route)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send, route: McpRoute) -> None:
        """Authenticate, rate-limit and hand the request to the MCP transport it names."""
        if route.client is not None:
            try:
                validate_name("client name in the URL", route.client)
            except OpenMemoryError as exc:
                await _refuse(send, exc.http_status, exc.message, call=True)
                return
        address = _address(scope)
        wait = await self.auth_failures.wait(address)
        if wait:
            AUTH_FAILURES.labels("429").inc()
            await _refuse(
                send, 429, "too many failed authentications from this address: "
                f"retry in {retry_after(wait)} s", wait, call=True,
            )  # fmt: skip
            return
        try:
            with timed("auth"):
                principal = await self._principal(scope, route)
        except OpenMemoryError as exc:
            AUTH_FAILURES.labels(str(exc.http_status)).inc()
            if isinstance(exc, Unauthorized) and _token(scope) is not None:
                await self.auth_failures.failed(address)  # a wrong key; a missing one is no guess
            await _refuse(send, exc.http_status, exc.message, metadata_url=self.metadata_url, call=True)
            return
        with timed("rate_limit"):
            wait = await self.limiter.admit(principal.key_id)  # counted in NATS in the background
        if wait:
            AUTH_FAILURES.labels("429").inc()
            self.refusals.refused(_key_label(scope, principal), self.per_key_limit, wait)
            await _refuse_rate_limited(send, self.per_key_limit, wait)
            return
        if scope["method"] == "POST":
            body = await _read_body(receive, self.max_body)
            if body is None:
                await _refuse(send, 413, f"the request is larger than {self.max_body} bytes", call=True)
                return
            receive = _replay(body, receive)
        scope = dict(scope)
        scope["state"] = {**scope.get("state", {}), "principal": principal}
        if route.kind == "http":
            await self.streamable({**scope, "path": "/mcp", "raw_path": b"/mcp"}, receive, send)
            return
        # SSE: the transport tells the client where to post messages as root_path + "/messages/",
        # so an OpenMemory-form session posts back under its own client path.
        scope["root_path"] = route.root_path
        if route.kind == "messages":
            session_id = _session_id(scope)
            if session_id is not None and self.sse_owners.get(session_id) != Owner.of(principal):
                # Another key's session, or one this process does not hold: as if it did not exist.
                await _refuse(
                    send, 404, "no such session for this API key: open one with GET /sse", call=True
                )
                return
            await self.sse(scope, receive, send)
            return
        scope["path"] = route.root_path + "/sse"
        await self._stream(scope, receive, send, Owner.of(principal))

    async def _stream(self, scope: Scope, receive: Receive, send: Send, owner: Owner) -> None:
        """Serve a legacy SSE stream, binding its session to `owner` from the moment the transport
        announces the session id (before the client can know it) until the stream ends."""
        opened: list[str] = []

        async def announced(message: Message) -> None:
            if not opened and message["type"] == "http.response.body":
                found = _SSE_SESSION.search(message.get("body", b""))
                if found:
                    opened.append(uuid.UUID(hex=found[1].decode()).hex)
                    self.sse_owners[opened[0]] = owner
            await send(message)

        try:
            await self.sse(scope, receive, announced)
        finally:
            for session_id in opened:
                self.sse_owners.pop(session_id, None)


def create_app(
    gateway: MemoryGateway,
    keys: KeyValue,
    rates: KeyValue,
    settings: GatewaySettings,
    oauth: OAuthSettings | None = None,
) -> GatewayFront:
    mcp = build_mcp(gateway)
    quiet_session_termination()
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.allowed_hosts,
        allowed_origins=settings.allowed_origins,
    )
    # Answers as plain JSON rather than an SSE stream per POST: a tool here sends nothing before its
    # answer (a stateless POST has no back-channel anyway), and the stream costs each call a third
    # of the SDK's time. `subscriptions/listen` still streams (the SDK keeps SSE for it).
    streamable = mcp.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, transport_security=security
    )
    sse = mcp.sse_app(sse_path="/sse", message_path="/messages/", transport_security=security)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # A mounted app's lifespan never runs: the host enters the session manager itself.
        async with mcp.session_manager.run():
            yield

    api = FastAPI(title="OpenMemory gateway", version="0.1.0", lifespan=lifespan)

    @api.get("/")
    async def index() -> dict[str, str]:
        """Where to connect."""
        return {"service": "openmemory-gateway", "mcp": "/mcp", "sse": "/sse"}

    front = GatewayFront(api, streamable, sse, keys, rates, settings)
    if oauth is not None and oauth.enabled:
        assert oauth.issuer_url is not None
        resource = oauth.resource_url or settings.mcp_url
        front.verifier = IntrospectionTokenVerifier(oauth, resource)
        front.oauth_scopes = oauth.default_scopes
        front.metadata_url = str(build_resource_metadata_url(AnyHttpUrl(resource)))
        for route in create_protected_resource_routes(
            AnyHttpUrl(resource), [AnyHttpUrl(oauth.issuer_url)], ["read", "write"], "OpenMemory"
        ):
            api.router.routes.append(route)
    return front
