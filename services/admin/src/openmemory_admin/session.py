"""Dashboard sessions: sign in with an API key, get a signed cookie and a CSRF token.

The cookie names the key (by its id, never the key itself), so revoking the key ends its sessions
at once, and the session (by a random id) whose record the server keeps in the settings KV bucket
(`session.<key id>.<session id>`), so signing out ends it on every replica: a copied or kept cookie
is refused from then on. The record expires with the cookie. Writes made with the cookie must send
the session's CSRF token in `X-CSRF-Token` and come from the dashboard's own origin. Requests that
present an API key in a header need neither: no browser sends those on its own.
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

import nats.errors
import nats.js.errors

from openmemory_core.contracts import SESSION_KEY_PREFIX
from openmemory_core.errors import Unauthorized, Unavailable
from openmemory_core.kv import Bucket, kv_entries, kv_value

COOKIE = "om_session"
CSRF_HEADER = "x-csrf-token"
SECRET_KEY = "session_secret"
SESSION_SECONDS = 12 * 3600
#: Live sessions one key may hold; signing in once more ends its oldest.
MAX_SESSIONS_PER_KEY = 20
#: How often a long-lived response (the activity stream) checks that its caller may still see it.
RECHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Session:
    key_id: str
    csrf: str
    expires: float
    session_id: str

    @property
    def record(self) -> str:
        """The session's key in the settings bucket."""
        return f"{SESSION_KEY_PREFIX}{self.key_id}.{self.session_id}"


async def session_secret(kv: Bucket) -> bytes:
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


def issue(secret: bytes, key_id: str, seconds: float = SESSION_SECONDS) -> tuple[str, Session]:
    """A new session of the key and its signed cookie (nothing stored: `open_session` does that)."""
    session = Session(
        key_id=key_id, csrf=secrets.token_urlsafe(24), expires=time.time() + seconds,
        session_id=secrets.token_hex(16),
    )  # fmt: skip
    body = base64.urlsafe_b64encode(json.dumps(session.__dict__).encode())
    return f"{body.decode()}.{_sign(secret, body)}", session


def read(secret: bytes, cookie: str | None) -> Session:
    """The session a cookie carries, if its signature holds and it has not expired. Whether it is
    still open is `current_session`'s question."""
    if not cookie or "." not in cookie:
        raise Unauthorized("sign in first")
    body, signature = cookie.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(secret, body.encode())):
        raise Unauthorized("the session is not valid: sign in again")
    try:
        values = json.loads(base64.urlsafe_b64decode(body.encode()))
        session = Session(
            key_id=str(values["key_id"]), csrf=str(values["csrf"]), expires=float(values["expires"]),
            session_id=str(values["session_id"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:  # a cookie of an earlier version too
        raise Unauthorized("the session is not valid: sign in again") from exc
    if session.expires < time.time():
        raise Unauthorized("the session has expired: sign in again")
    return session


async def open_session(
    kv: Bucket, secret: bytes, key_id: str, seconds: float = SESSION_SECONDS
) -> tuple[str, Session]:
    """Sign a key in: store a new session's record and return its cookie. The key's expired
    sessions are forgotten, and its oldest beyond `MAX_SESSIONS_PER_KEY` ended."""
    cookie, session = issue(secret, key_id, seconds)
    live = []
    for name, expires in await _records(kv, f"{SESSION_KEY_PREFIX}{key_id}."):
        if expires < time.time():
            await _forget(kv, name)
        else:
            live.append((expires, name))
    for _, name in sorted(live)[: max(0, len(live) - MAX_SESSIONS_PER_KEY + 1)]:
        await _forget(kv, name)
    try:
        await kv.create(session.record, json.dumps({"expires": session.expires}).encode())
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
        raise Unavailable(f"the session could not be stored; retry shortly ({type(exc).__name__})") from exc
    return cookie, session


async def current_session(kv: Bucket, secret: bytes, cookie: str | None) -> Session:
    """The cookie's session, if it is valid and still open (not signed out, not expired)."""
    session = read(secret, cookie)
    value, _ = await kv_value(kv, session.record)
    if value is None:
        raise Unauthorized("this session has ended (signed out): sign in again")
    try:
        expires = float(json.loads(value)["expires"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthorized("the session is not valid: sign in again") from exc
    if expires < time.time():
        raise Unauthorized("the session has expired: sign in again")
    return session


async def end_session(kv: Bucket, session: Session) -> None:
    """Sign out: the session's record goes, and with it every use of its cookie, on every replica."""
    await _forget(kv, session.record)


async def _records(kv: Bucket, prefix: str) -> list[tuple[str, float]]:
    records = []
    for name, value in await kv_entries(kv, prefix):
        try:
            records.append((name, float(json.loads(value)["expires"])))
        except (ValueError, KeyError, TypeError):
            records.append((name, 0.0))  # unreadable: treated as expired
    return records


async def _forget(kv: Bucket, name: str) -> None:
    """Remove a record and its history from the bucket's stream: unlike a KV delete, which keeps a
    marker per key forever, this leaves nothing behind."""
    try:
        await kv.jetstream.purge_stream(kv.stream_name, subject=f"{kv.subject_prefix}{name}")
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
        raise Unavailable(f"the session could not be ended; retry shortly ({type(exc).__name__})") from exc
