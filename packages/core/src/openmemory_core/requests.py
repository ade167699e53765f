"""How an accepted command ended, by request id: the record behind `get_request` and MCP tasks.

An add answers "accepted" when ingest has not applied it within the gateway's short wait. The client
keeps the request id; the gateway notes the command as `pending` in the KV bucket `om_requests`, and
ingest writes `applied` (with the result) or `failed` (parked in the dead letters, with the reason)
once it is done. Records expire after a day. Ingest writes every outcome, so the order of the two
writes does not matter: the gateway only *creates* the pending record, which fails harmlessly when
ingest got there first. A record names its user, and only that user's keys can read it.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import nats.js.errors

from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput, NotFound
from openmemory_core.kv import BUS_DOWN, Bucket

log = logging.getLogger(__name__)

#: Request ids are the system's own (uuid hex); a KV key may hold no other characters anyway.
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
UNKNOWN = "no such request (ids are kept for a day, and only for the user who made the request)"


def _key(request_id: str) -> str | None:
    return request_id if REQUEST_ID.fullmatch(request_id) else None


async def note_pending(bucket: Bucket, user_id: str, kind: str, request_id: str) -> None:
    """Record an accepted, not yet applied command; a record ingest already wrote is kept. Never
    fails the request, whose command is stored already: while NATS does not answer, no pending
    record is written, and `get_request` finds the request once ingest has written how it ended."""
    key = _key(request_id)
    if key is None:
        return
    record = c.RequestRecord(user_id=user_id, kind=kind, status="pending", at=datetime.now(UTC))
    try:
        await bucket.create(key, record.model_dump_json().encode())
    except nats.js.errors.KeyWrongLastSequenceError:  # ingest finished it meanwhile
        pass
    except BUS_DOWN as exc:
        log.warning("request %s is stored; its pending record is not (%s)", request_id, type(exc).__name__)


async def record_outcome(bucket: Bucket, user_id: str, kind: str, result: c.CommandResult) -> None:
    """Record how ingest ended a command. Never fails the command: it is applied (or parked) already."""
    key = _key(result.request_id)
    if key is None:
        return
    record = c.RequestRecord(
        user_id=user_id,
        kind=kind,
        status="applied" if result.ok else "failed",
        at=datetime.now(UTC),
        result=result,
    )
    try:
        await bucket.put(key, record.model_dump_json().encode())
    except Exception:
        log.warning("could not record how request %s ended", result.request_id, exc_info=True)


async def read(bucket: Bucket, user_id: str, request_id: str) -> c.RequestRecord:
    """The record of one of this user's requests; another user's, an expired or an unknown one is
    the same "not found"."""
    if not isinstance(request_id, str) or _key(request_id) is None:
        raise InvalidInput("request_id is not one this system gives out (letters, digits, - and _)")
    try:
        entry = await bucket.get(request_id)
    except nats.js.errors.KeyNotFoundError:
        raise NotFound(UNKNOWN) from None
    if entry.value is None:
        raise NotFound(UNKNOWN)
    record = c.RequestRecord.model_validate_json(entry.value)
    if record.user_id != user_id:
        raise NotFound(UNKNOWN)
    return record
