"""Access control, in one place for every door (MCP, REST, dashboard): the key's scopes, then each
user's rules per app (an MCP client): paused, or without read or write permission. The rules are
stored in a NATS KV bucket; `authorize` is what the gateway and the admin API call for every
request, and search checks the app again on every query it is given an app for."""

from __future__ import annotations

from nats.js.kv import KeyValue

from openmemory_core import contracts as c
from openmemory_core.errors import Forbidden
from openmemory_core.kv import Bucket, kv_entries, kv_value

#: The scopes that reach memories: an app's pause and its read/write permissions apply to them.
#: `admin` (the user's own keys, apps, dead letters) and `operator` (system settings) do not, so a
#: user can always resume an app they paused.
MEMORY_SCOPES = ("read", "write")


async def get_app(kv: KeyValue, user_id: str, app: str) -> c.AppRecord:
    """The app's settings for the user; an app never configured may do everything."""
    value, _ = await kv_value(kv, c.app_key(user_id, app))
    return c.AppRecord.model_validate_json(value) if value else c.AppRecord(user_id=user_id, app=app)


async def put_app(kv: KeyValue, record: c.AppRecord) -> c.AppRecord:
    record = record.model_copy(update={"updated_at": c.now()})
    await kv.put(c.app_key(record.user_id, record.app), record.model_dump_json().encode())
    return record


async def app_records(kv: Bucket, user_id: str) -> list[c.AppRecord]:
    return [
        c.AppRecord.model_validate_json(v) for _, v in await kv_entries(kv, c.subject_token(user_id) + ".")
    ]


async def require_app(kv: KeyValue, user_id: str, app: str, scope: str) -> None:
    """Refuse when the user paused this app or took the permission away."""
    record = await get_app(kv, user_id, app)
    if record.paused:
        raise Forbidden(f"the app {app!r} is paused: resume it in the dashboard to use it again")
    if not record.allows(scope):
        raise Forbidden(f"the app {app!r} has no {scope} permission: grant it in the dashboard")


async def authorize(kv: KeyValue, principal: c.Principal, *scopes: str) -> None:
    """Refuse unless the key has every scope and, for reading or writing memories, the user lets
    this app do it. Every door calls this, so MCP, REST and the dashboard follow the same rules."""
    for scope in scopes:
        if not principal.can(scope):
            raise Forbidden(f"this API key does not have the {scope!r} scope")
    for scope in scopes:
        if scope in MEMORY_SCOPES:
            await require_app(kv, principal.user_id, principal.app, scope)
