"""Webhook registration on the admin app over a real nats-server: where a webhook may point, the
bound per user, who sees and removes what, and that refused input changes nothing. Delivery itself
is tested end to end (`tests/e2e/test_webhooks.py`)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats.js.errors
import pytest
import pytest_asyncio

from openmemory_admin.app import create_app
from openmemory_admin.deps import AdminContext
from openmemory_admin.webhooks.signing import signature, signature_header, verify
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.keys import create_key
from openmemory_core.kv import kv_entries
from openmemory_core.ratelimit import FailedAuthThrottle, SharedRateLimiter
from openmemory_core.settings import CoreSettings, Settings, WebhookSettings
from openmemory_testing import unique

PUBLIC = "https://93.184.215.14/hooks/openmemory"  # a global address: no DNS needed to check it


async def admin_app(bus: Bus, data_dir: Path, webhooks: WebhookSettings) -> httpx.AsyncClient:
    rates, settings_kv = await bus.rate_bucket(), await bus.settings_bucket()
    settings = Settings(core=CoreSettings(data_dir=data_dir), webhooks=webhooks)
    ctx = AdminContext(
        bus=bus, keys=await bus.keys_bucket(), apps=await bus.apps_bucket(), settings_kv=settings_kv,
        settings=settings, mcp_url="http://127.0.0.1:8765/mcp", secret=secrets.token_bytes(32),
        limiter=SharedRateLimiter(rates, 1000, unique("admin")),
        auth_failures=FailedAuthThrottle(rates, 1000, unique("admin")),
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest_asyncio.fixture
async def http(bus: Bus, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with await admin_app(bus, tmp_path, WebhookSettings(max_per_user=3)) as client:
        yield client


async def key(bus: Bus, user: str, *scopes: str) -> dict[str, str]:
    token, _ = await create_key(await bus.keys_bucket(), user, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def stored(bus: Bus, user: str) -> list[bytes]:
    return [
        value
        for _, value in await kv_entries(await bus._bucket(c.WEBHOOKS_BUCKET), f"{c.subject_token(user)}.")
    ]


async def consumer_exists(bus: Bus, registration_id: str) -> bool:
    try:
        await bus.js.consumer_info(c.EVENTS_STREAM, c.webhook_durable(registration_id))
    except nats.js.errors.NotFoundError:
        return False
    return True


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://93.184.215.14/hook", "must be https"),
        ("https://127.0.0.1/hook", "loopback, private or link-local"),
        ("https://10.1.2.3/hook", "loopback, private or link-local"),
        ("https://192.168.0.10:8443/hook", "loopback, private or link-local"),
        ("https://169.254.169.254/latest/meta-data", "loopback, private or link-local"),
        ("https://[::1]/hook", "loopback, private or link-local"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback, private or link-local"),
        ("https://localhost/hook", "loopback, private or link-local"),
        ("https://user:pw@93.184.215.14/hook", "must not carry credentials"),
        ("ftp://93.184.215.14/hook", "http:// or https://"),
        ("https://93.184.215.14/" + "a" * 3000, "1 to 2048 characters"),
        ("https://93.184.215.14/a b", "spaces or control characters"),
        ("", "1 to 2048 characters"),
    ],
)
async def test_targets_that_are_refused(bus: Bus, http: httpx.AsyncClient, url: str, reason: str) -> None:
    user = unique()
    headers = await key(bus, user, "admin")
    answer = await http.post("/api/v1/webhooks", json={"url": url}, headers=headers)
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"]
    assert (await http.get("/api/v1/webhooks", headers=headers)).json() == []
    assert await stored(bus, user) == []


async def test_private_targets_and_plain_http_when_the_operator_allows_them(bus: Bus, tmp_path: Path) -> None:
    user = unique()
    async with await admin_app(bus, tmp_path, WebhookSettings(allow_private=True)) as http:
        answer = await http.post(
            "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=await key(bus, user, "admin")
        )
    assert answer.status_code == 201, answer.text


async def test_register_list_pause_and_remove(bus: Bus, http: httpx.AsyncClient) -> None:
    user = unique()
    headers = await key(bus, user, "admin")
    before = (await bus.js.stream_info(c.EVENTS_STREAM)).state.last_seq
    made = await http.post(
        "/api/v1/webhooks", json={"url": PUBLIC, "kinds": ["DELETE", "ADD"]}, headers=headers
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 40
    assert hook["kinds"] == ["ADD", "DELETE"] and hook["enabled"] and not hook["all_users"]

    listed = (await http.get("/api/v1/webhooks", headers=headers)).json()
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]  # shown once, at creation
    [raw] = await stored(bus, user)
    assert hook["secret"].encode() not in raw  # stored sealed
    info = await bus.js.consumer_info(c.EVENTS_STREAM, c.webhook_durable(hook["id"]))
    assert info.config.filter_subject == c.event_subject(user)  # the user's events only
    assert info.config.max_ack_pending == 1
    assert info.config.opt_start_seq == before + 1  # from now on

    paused = await http.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": False}, headers=headers)
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    assert (await http.get("/api/v1/webhooks", headers=headers)).json()[0]["enabled"] is False

    gone = await http.delete(f"/api/v1/webhooks/{hook['id']}", headers=headers)
    assert gone.status_code == 204
    assert (await http.get("/api/v1/webhooks", headers=headers)).json() == []
    assert not await consumer_exists(bus, hook["id"])


async def test_at_most_max_per_user(bus: Bus, http: httpx.AsyncClient) -> None:
    user = unique()
    headers = await key(bus, user, "admin")
    for n in range(3):
        made = await http.post("/api/v1/webhooks", json={"url": f"{PUBLIC}/{n}"}, headers=headers)
        assert made.status_code == 201, made.text
    refused = await http.post("/api/v1/webhooks", json={"url": f"{PUBLIC}/3"}, headers=headers)
    assert refused.status_code == 422 and "at most 3 webhooks" in refused.json()["detail"]
    assert len((await http.get("/api/v1/webhooks", headers=headers)).json()) == 3
    # Another user's bound is its own.
    other = await http.post(
        "/api/v1/webhooks", json={"url": PUBLIC}, headers=await key(bus, unique(), "admin")
    )
    assert other.status_code == 201


async def test_another_users_webhook_is_neither_visible_nor_changeable(
    bus: Bus, http: httpx.AsyncClient
) -> None:
    owner, intruder = unique(), unique()
    owner_headers = await key(bus, owner, "admin")
    hook = (await http.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=owner_headers)).json()
    for headers in (await key(bus, intruder, "admin"), await key(bus, intruder, "admin", c.OPERATOR_SCOPE)):
        assert (await http.get("/api/v1/webhooks", headers=headers)).json() == []
        deleted = await http.delete(f"/api/v1/webhooks/{hook['id']}", headers=headers)
        assert deleted.status_code == 404
        patched = await http.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": False}, headers=headers)
        assert patched.status_code == 404
    listed = (await http.get("/api/v1/webhooks", headers=owner_headers)).json()
    assert [(h["id"], h["enabled"]) for h in listed] == [(hook["id"], True)]
    assert await consumer_exists(bus, hook["id"])


async def test_scopes_and_bad_input_change_nothing(bus: Bus, http: httpx.AsyncClient) -> None:
    user = unique()
    reader = await key(bus, user, "read", "write")
    refused = await http.post("/api/v1/webhooks", json={"url": PUBLIC}, headers=reader)
    assert refused.status_code == 403
    assert (await http.get("/api/v1/webhooks", headers=reader)).status_code == 403
    admin = await key(bus, user, "admin")
    everyone = await http.post("/api/v1/webhooks", json={"url": PUBLIC, "all_users": True}, headers=admin)
    assert everyone.status_code == 403  # every user's events: operator keys only
    for body in (
        {"url": PUBLIC, "kinds": ["NONE"]},
        {"url": PUBLIC, "kinds": ["ADD", "ADD", "ADD", "ADD"]},
        {"url": PUBLIC, "secret": "mine"},
        {"url": 42},
        {},
    ):
        answer = await http.post("/api/v1/webhooks", json=body, headers=admin)
        assert answer.status_code == 422, (body, answer.text)
    for path in ("/api/v1/webhooks/../../keys", "/api/v1/webhooks/ZZZZ", "/api/v1/webhooks/failures"):
        assert (await http.delete(path, headers=admin)).status_code in (404, 405)
    assert (await http.post("/api/v1/webhooks/failures/0/retry", headers=admin)).status_code == 422
    assert (await http.delete("/api/v1/webhooks/failures/999999999", headers=admin)).status_code == 404
    assert await stored(bus, user) == []


async def test_an_operator_registers_for_every_user(bus: Bus, http: httpx.AsyncClient) -> None:
    operator = await key(bus, unique(), "admin", c.OPERATOR_SCOPE)
    made = await http.post("/api/v1/webhooks", json={"url": PUBLIC, "all_users": True}, headers=operator)
    assert made.status_code == 201, made.text
    hook = made.json()
    info = await bus.js.consumer_info(c.EVENTS_STREAM, c.webhook_durable(hook["id"]))
    assert info.config.filter_subject == f"{c.EVENTS_SUBJECT_PREFIX}.>"
    another_operator = await key(bus, unique(), c.OPERATOR_SCOPE)
    assert hook["id"] in [
        h["id"] for h in (await http.get("/api/v1/webhooks", headers=another_operator)).json()
    ]
    plain = await key(bus, unique(), "admin")
    assert (await http.get("/api/v1/webhooks", headers=plain)).json() == []
    assert (await http.delete(f"/api/v1/webhooks/{hook['id']}", headers=plain)).status_code == 404
    assert (await http.delete(f"/api/v1/webhooks/{hook['id']}", headers=another_operator)).status_code == 204


def test_signature_verifies_and_refuses_tampering() -> None:
    secret, body = "whsec_test", b'{"webhook_id":"x","event":{}}'
    header = signature_header(secret, body)
    assert verify(secret, header, body)
    assert not verify(secret, header, body + b" ")
    assert not verify("whsec_other", header, body)
    assert not verify(secret, header.replace("t=", "t=1"), body)  # another time: another signature
    old = signature_header(secret, body, timestamp=1_700_000_000)
    assert not verify(secret, old, body)  # too old: a replay
    assert signature(secret, 1, body) != signature(secret, 2, body)
