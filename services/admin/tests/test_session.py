"""Dashboard sessions: the signed cookie, and the record the server keeps of each open session in a
real nats-server's KV bucket."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest

from openmemory_admin.session import (
    MAX_SESSIONS_PER_KEY,
    _sign,
    current_session,
    end_session,
    issue,
    open_session,
    read,
    session_secret,
)
from openmemory_core.bus import Bus
from openmemory_core.errors import Unauthorized
from openmemory_core.kv import kv_keys
from openmemory_testing import unique

SECRET = secrets.token_bytes(32)


def test_a_cookie_reads_back_as_its_session() -> None:
    cookie, session = issue(SECRET, "k" * 64)
    assert read(SECRET, cookie) == session
    assert session.expires > time.time() + 11 * 3600
    other, again = issue(SECRET, "k" * 64)
    assert again.session_id != session.session_id and again.csrf != session.csrf and other != cookie


@pytest.mark.parametrize("cookie", [None, "", "nodot", "e30.bad-signature"])
def test_a_missing_or_unsigned_cookie_is_refused(cookie: str | None) -> None:
    with pytest.raises(Unauthorized):
        read(SECRET, cookie)


def test_a_cookie_signed_with_another_secret_or_altered_is_refused() -> None:
    cookie, _ = issue(SECRET, "k" * 64)
    with pytest.raises(Unauthorized, match="not valid"):
        read(secrets.token_bytes(32), cookie)
    body, signature = cookie.rsplit(".", 1)
    values = json.loads(base64.urlsafe_b64decode(body))
    forged = base64.urlsafe_b64encode(json.dumps({**values, "key_id": "x" * 64}).encode()).decode()
    with pytest.raises(Unauthorized, match="not valid"):
        read(SECRET, f"{forged}.{signature}")


def test_an_expired_cookie_is_refused() -> None:
    cookie, _ = issue(SECRET, "k" * 64, seconds=-1)
    with pytest.raises(Unauthorized, match="expired"):
        read(SECRET, cookie)


def test_a_cookie_of_the_earlier_kind_without_a_session_id_is_refused() -> None:
    body = base64.urlsafe_b64encode(
        json.dumps({"key_id": "k" * 64, "csrf": "c", "expires": time.time() + 60}).encode()
    )
    with pytest.raises(Unauthorized, match="sign in again"):
        read(SECRET, f"{body.decode()}.{_sign(SECRET, body)}")


async def test_signing_out_ends_that_session_only(bus: Bus) -> None:
    kv = await bus.settings_bucket()
    key_id = unique("key")
    cookie, session = await open_session(kv, SECRET, key_id)
    other_cookie, other = await open_session(kv, SECRET, key_id)
    assert await current_session(kv, SECRET, cookie) == session
    await end_session(kv, session)
    with pytest.raises(Unauthorized, match="signed out"):
        await current_session(kv, SECRET, cookie)
    assert await current_session(kv, SECRET, other_cookie) == other
    # Nothing of the ended session is left in the bucket, not even a delete marker.
    assert await kv_keys(kv, f"session.{key_id}.") == [other.record]


async def test_a_session_is_open_only_while_its_record_lasts(bus: Bus) -> None:
    kv = await bus.settings_bucket()
    key_id = unique("key")
    cookie, session = await open_session(kv, SECRET, key_id)
    await kv.put(session.record, json.dumps({"expires": time.time() - 1}).encode())
    with pytest.raises(Unauthorized, match="expired"):
        await current_session(kv, SECRET, cookie)


async def test_a_cookie_whose_session_was_never_stored_is_refused(bus: Bus) -> None:
    kv = await bus.settings_bucket()
    cookie, _ = issue(SECRET, unique("key"))  # signed, but never opened on the server
    with pytest.raises(Unauthorized):
        await current_session(kv, SECRET, cookie)


async def test_signing_in_forgets_expired_sessions_and_ends_the_oldest_past_the_cap(bus: Bus) -> None:
    kv = await bus.settings_bucket()
    key_id = unique("key")
    expired_cookie, expired = await open_session(kv, SECRET, key_id, seconds=-1)
    opened = [await open_session(kv, SECRET, key_id, seconds=3600 + i) for i in range(MAX_SESSIONS_PER_KEY)]
    names = await kv_keys(kv, f"session.{key_id}.")
    assert expired.record not in names and len(names) == MAX_SESSIONS_PER_KEY
    with pytest.raises(Unauthorized):
        await current_session(kv, SECRET, expired_cookie)
    newest_cookie, _ = await open_session(kv, SECRET, key_id, seconds=7200)
    with pytest.raises(Unauthorized, match="signed out"):
        await current_session(kv, SECRET, opened[0][0])  # the oldest one ended
    for cookie, session in [*opened[1:], (newest_cookie, None)]:
        assert (await current_session(kv, SECRET, cookie)).key_id == key_id, session


async def test_every_replica_signs_with_one_secret(bus: Bus, nats_url: str) -> None:
    other = await Bus.connect(nats_url, "admin2", partitions=4)
    try:
        assert await session_secret(await bus.settings_bucket()) == await session_secret(
            await other.settings_bucket()
        )
    finally:
        await other.close()
