"""API keys: random, shown once, stored hashed in a NATS KV bucket, identified by a short prefix."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from datetime import datetime, timedelta

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from openmemory_core.contracts import ANY_APP, ID_NAME_PATTERN, SCOPES, ApiKeyRecord, Principal, now
from openmemory_core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from openmemory_core.kv import Bucket, kv_entries, kv_value

KEY_PREFIX = "om_"
_KEY_SHAPE = re.compile(r"^om_[0-9a-f]{8}_[A-Za-z0-9_-]{32,64}$")
_NAME = re.compile(ID_NAME_PATTERN)
LAST_USED_RESOLUTION = timedelta(seconds=60)


def key_id(token: str) -> str:
    """The KV key of a token: its SHA-256. Keys carry 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


def validate_name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{kind} {value!r} is not valid: use 1-128 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return value


async def create_key(
    kv: KeyValue,
    user_id: str,
    app: str = ANY_APP,
    scopes: tuple[str, ...] = ("read", "write"),
    label: str = "",
    expires_at: datetime | None = None,
) -> tuple[str, ApiKeyRecord]:
    """Mint a key; the token is returned once and never stored."""
    validate_name("user", user_id)
    if app != ANY_APP:
        validate_name("app", app)
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise InvalidInput(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    if expires_at is not None and expires_at <= now():
        raise InvalidInput("the expiry is in the past")
    if len(label) > 200:
        raise InvalidInput("the label is longer than 200 characters")
    prefix = secrets.token_hex(4)
    token = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(
        key_id=key_id(token), prefix=prefix, user_id=user_id, app=app, scopes=list(scopes), label=label,
        expires_at=expires_at,
    )  # fmt: skip
    await kv.create(record.key_id, record.model_dump_json().encode())
    return token, record


def presented_token(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents: `Authorization: Bearer <key>`, else `X-API-Key: <key>`."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return x_api_key or None


async def verify_key(kv: KeyValue, token: str | None, requested_app: str | None = None) -> Principal:
    """Turn a presented token into the principal it stands for, or refuse it.

    `requested_app` is the client name from an OpenMemory-style URL: it becomes the app when the key
    is not bound to one app; a key bound to another app is refused.
    """
    if not token:
        raise Unauthorized("an API key is required: send it as 'Authorization: Bearer <key>'")
    if not _KEY_SHAPE.fullmatch(token):
        raise Unauthorized("the API key is not valid")
    value, revision = await kv_value(kv, key_id(token))
    if value is None:
        raise Unauthorized("the API key is not valid")
    return await _principal(kv, ApiKeyRecord.model_validate_json(value), revision, requested_app)


def usable(record: ApiKeyRecord) -> None:
    """Refuse a revoked or expired key."""
    if record.revoked:
        raise Unauthorized("the API key was revoked")
    if record.expires_at is not None and record.expires_at <= now():
        raise Unauthorized("the API key has expired")


async def principal_of(kv: KeyValue, stored_key_id: str) -> Principal:
    """The principal of a key known by its id (a dashboard session), if it is still usable."""
    value, revision = await kv_value(kv, stored_key_id)
    if value is None:
        raise Unauthorized("the session's API key no longer exists: sign in again")
    return await _principal(kv, ApiKeyRecord.model_validate_json(value), revision, None)


async def _principal(
    kv: KeyValue, record: ApiKeyRecord, revision: int | None, requested_app: str | None
) -> Principal:
    """A usable key's principal: its app, or the URL's client when the key is for any app."""
    usable(record)
    app = record.app
    if requested_app is not None:
        if not _NAME.fullmatch(requested_app):
            raise InvalidInput(f"client name {requested_app!r} in the URL is not valid")
        if app not in (ANY_APP, requested_app):
            raise Forbidden(f"this API key is for app {app!r}, not {requested_app!r}")
        app = requested_app
    if app == ANY_APP:
        app = "default"
    await _touch(kv, record, revision)
    return Principal(user_id=record.user_id, app=app, key_id=record.key_id, scopes=tuple(record.scopes))


async def _touch(kv: KeyValue, record: ApiKeyRecord, revision: int | None) -> None:
    """Record when a key was last used, at most once a minute. A compare-and-set on the entry's
    revision: it never overwrites a revocation that happened meanwhile."""
    moment = now()
    if record.last_used_at is not None and moment - record.last_used_at < LAST_USED_RESOLUTION:
        return
    updated = record.model_copy(update={"last_used_at": moment})
    with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError, nats.errors.Error):
        await kv.update(record.key_id, updated.model_dump_json().encode(), last=revision)


async def list_keys(kv: Bucket, user_id: str | None = None) -> list[ApiKeyRecord]:
    records = [ApiKeyRecord.model_validate_json(value) for _, value in await kv_entries(kv)]
    mine = [r for r in records if user_id is None or r.user_id == user_id]
    return sorted(mine, key=lambda r: r.created_at)


async def revoke_key(kv: Bucket, prefix: str, user_id: str | None = None) -> ApiKeyRecord:
    """Revoke by the short prefix shown in listings (the part after `om_`); with `user_id`, only
    one of that user's keys."""
    matches = [r for r in await list_keys(kv, user_id) if r.prefix == prefix and not r.revoked]
    if not matches:
        raise NotFound(f"no active key with prefix {prefix!r}")
    record = matches[0].model_copy(update={"revoked": True})
    await kv.put(record.key_id, record.model_dump_json().encode())
    return record
