"""Dashboard sessions: sign in with an API key, get a signed cookie and a CSRF token.

The cookie names the key (by its id, never the key itself), so revoking the key ends its sessions
at once. Writes made with the cookie must send the session's CSRF token in `X-CSRF-Token` and come
from the dashboard's own origin. Requests that present an API key in a header need neither: no
browser sends those on its own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

import nats.js.errors
from nats.js.kv import KeyValue

from openmemory_core.errors import Unauthorized

COOKIE = "om_session"
CSRF_HEADER = "x-csrf-token"
SECRET_KEY = "session_secret"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    key_id: str
    csrf: str
    expires: float


async def session_secret(kv: KeyValue) -> bytes:
    """One signing secret for every admin replica, made on first use and kept in the KV bucket."""
    try:
        entry = await kv.get(SECRET_KEY)
        if entry.value:
            return base64.b64decode(entry.value)
    except nats.js.errors.KeyNotFoundError:
        pass
    with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):  # a sibling made it first
        await kv.create(SECRET_KEY, base64.b64encode(secrets.token_bytes(32)))
    entry = await kv.get(SECRET_KEY)
    assert entry.value is not None
    return base64.b64decode(entry.value)


def _sign(secret: bytes, body: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode().rstrip("=")


def issue(secret: bytes, key_id: str) -> tuple[str, Session]:
    session = Session(key_id=key_id, csrf=secrets.token_urlsafe(24), expires=time.time() + SESSION_SECONDS)
    body = base64.urlsafe_b64encode(json.dumps(session.__dict__).encode())
    return f"{body.decode()}.{_sign(secret, body)}", session


def read(secret: bytes, cookie: str | None) -> Session:
    if not cookie or "." not in cookie:
        raise Unauthorized("sign in first")
    body, signature = cookie.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(secret, body.encode())):
        raise Unauthorized("the session is not valid: sign in again")
    try:
        values = json.loads(base64.urlsafe_b64decode(body.encode()))
        session = Session(
            key_id=str(values["key_id"]), csrf=str(values["csrf"]), expires=float(values["expires"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthorized("the session is not valid: sign in again") from exc
    if session.expires < time.time():
        raise Unauthorized("the session has expired: sign in again")
    return session
