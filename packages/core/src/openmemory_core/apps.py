"""Per-app access control: each user can pause an app (an MCP client) or take away its read or write
permission. Stored in a NATS KV bucket; the gateway checks it on every call and search again on
every query it is given an app for."""

from __future__ import annotations

from nats.js.kv import KeyValue

from openmemory_core import contracts as c
from openmemory_core.errors import Forbidden
from openmemory_core.kvkeys import kv_entries, kv_value


async def get_app(kv: KeyValue, user_id: str, app: str) -> c.AppRecord:
    """The app's settings for the user; an app never configured may do everything."""
    value, _ = await kv_value(kv, c.app_key(user_id, app))
    return c.AppRecord.model_validate_json(value) if value else c.AppRecord(user_id=user_id, app=app)


async def put_app(kv: KeyValue, record: c.AppRecord) -> c.AppRecord:
    record = record.model_copy(update={"updated_at": c.now()})
    await kv.put(c.app_key(record.user_id, record.app), record.model_dump_json().encode())
    return record


async def app_records(kv: KeyValue, user_id: str) -> list[c.AppRecord]:
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
