"""The webhook dispatcher over a real nats-server, fed with events published on OM_EVENTS, delivering
to `WebhookReceiverTestServer` (the test stand-in for a person's endpoint): an operator's webhook
gets every user's events, each user's in order; a paused webhook gets what happened meanwhile once
resumed; a removed one gets nothing more and leaves no consumer behind."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats.js.errors
import pytest
import pytest_asyncio

from openmemory_admin.app import create_app
from openmemory_admin.deps import AdminContext
from openmemory_admin.webhooks.delivery import Sender, WebhookDispatcher, Webhooks
from openmemory_admin.webhooks.records import WebhookRecord
from openmemory_admin.webhooks.transport import WebhookTransport, is_public
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.keys import create_key
from openmemory_core.outbound import PrivateAddressRefused
from openmemory_core.ratelimit import FailedAuthThrottle, SharedRateLimiter
from openmemory_core.settings import CoreSettings, Settings, WebhookSettings
from openmemory_testing import eventually, unique
from openmemory_testing.webhook_receiver import WebhookReceiverTestServer


class Rig:
    def __init__(self, bus: Bus, http: httpx.AsyncClient, receiver: WebhookReceiverTestServer) -> None:
        self.bus, self.http, self.receiver = bus, http, receiver

    async def headers(self, user: str, *scopes: str) -> dict[str, str]:
        token, _ = await create_key(await self.bus.keys_bucket(), user, scopes=scopes)
        return {"Authorization": f"Bearer {token}"}

    async def register(self, headers: dict[str, str], path: str, **more: object) -> str:
        made = await self.http.post(
            "/api/v1/webhooks", json={"url": self.receiver.url(path), **more}, headers=headers
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    async def happen(self, user: str, n: int) -> list[str]:
        """`n` events of `user` on OM_EVENTS; their memory ids, in order."""
        ids = []
        for _ in range(n):
            event = c.MemoryEvent(
                request_id=uuid.uuid4().hex, user_id=user, app="test", memory_id=str(uuid.uuid4()),
                change=c.ChangeKind.ADD,
            )  # fmt: skip
            await self.bus.publish_event(event)
            ids.append(str(event.memory_id))
        return ids

    def arrived(self, path: str, user: str | None = None) -> list[str]:
        """Memory ids delivered on `path` (of `user`), first arrivals in order."""
        found = [
            d.payload["event"]["memory_id"]
            for d in self.receiver.at(path)
            if user is None or d.payload["event"]["user_id"] == user
        ]
        return list(dict.fromkeys(found))


@pytest_asyncio.fixture
async def rig(bus: Bus, tmp_path: Path) -> AsyncIterator[Rig]:
    webhooks = WebhookSettings(allow_private=True, refresh_seconds=0.1, backoff_base_seconds=0.2)
    settings = Settings(core=CoreSettings(data_dir=tmp_path), webhooks=webhooks)
    rates = await bus.rate_bucket()
    hooks = await Webhooks.open(bus, settings)
    ctx = AdminContext(
        bus=bus, keys=await bus.keys_bucket(), apps=await bus.apps_bucket(),
        settings_kv=await bus.settings_bucket(), settings=settings, mcp_url="http://127.0.0.1:8765/mcp",
        secret=secrets.token_bytes(32), limiter=SharedRateLimiter(rates, 1000, unique("admin")),
        auth_failures=FailedAuthThrottle(rates, 1000, unique("admin")), webhooks=hooks,
    )  # fmt: skip
    dispatcher = WebhookDispatcher(bus, hooks)
    await dispatcher.start()
    transport = httpx.ASGITransport(app=create_app(ctx))
    try:
        async with (
            WebhookReceiverTestServer() as receiver,
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
        ):
            yield Rig(bus, http, receiver)
    finally:
        await dispatcher.stop()
        await hooks.close()


async def test_an_operator_webhook_gets_every_users_events_each_in_order(rig: Rig) -> None:
    operator = await rig.headers(unique(), c.OPERATOR_SCOPE)
    path = f"/all/{unique()}"
    hook = await rig.register(operator, path, all_users=True)
    first, second = unique(), unique()
    wanted = {first: [], second: []}  # type: dict[str, list[str]]
    for _ in range(3):
        wanted[first] += await rig.happen(first, 2)
        wanted[second] += await rig.happen(second, 1)

    async def all_there() -> bool:
        return all(rig.arrived(path, user) == ids for user, ids in wanted.items())

    await eventually(all_there, timeout=30)
    # Every user's: not left behind for the other tests on this NATS.
    assert (await rig.http.delete(f"/api/v1/webhooks/{hook}", headers=operator)).status_code == 204


async def test_a_paused_webhook_gets_what_happened_meanwhile_on_resuming(rig: Rig) -> None:
    user = unique()
    headers = await rig.headers(user, "admin")
    path = f"/paused/{unique()}"
    hook = await rig.register(headers, path)
    before = await rig.happen(user, 2)

    async def these(ids: list[str]) -> bool:
        return rig.arrived(path) == ids

    await eventually(lambda: these(before), timeout=30)
    paused = await rig.http.patch(f"/api/v1/webhooks/{hook}", json={"enabled": False}, headers=headers)
    assert paused.status_code == 200
    meanwhile = await rig.happen(user, 3)
    resumed = await rig.http.patch(f"/api/v1/webhooks/{hook}", json={"enabled": True}, headers=headers)
    assert resumed.status_code == 200
    await eventually(lambda: these(before + meanwhile), timeout=30)


async def test_a_removed_webhook_gets_nothing_more_and_leaves_no_consumer(rig: Rig) -> None:
    user = unique()
    headers = await rig.headers(user, "admin")
    removed_path, kept_path = f"/removed/{unique()}", f"/kept/{unique()}"
    removed = await rig.register(headers, removed_path)
    await rig.register(headers, kept_path)
    early = await rig.happen(user, 1)
    await eventually(lambda: _both(rig, removed_path, kept_path, early), timeout=30)

    gone = await rig.http.delete(f"/api/v1/webhooks/{removed}", headers=headers)
    assert gone.status_code == 204
    late = await rig.happen(user, 2)
    await eventually(lambda: _is(rig.arrived(kept_path), early + late), timeout=30)
    assert rig.arrived(removed_path) == early
    try:
        await rig.bus.js.consumer_info(c.EVENTS_STREAM, c.webhook_durable(removed))
    except nats.js.errors.NotFoundError:
        pass
    else:
        raise AssertionError("the removed webhook's consumer is still there")


async def _both(rig: Rig, one: str, other: str, ids: list[str]) -> bool:
    return rig.arrived(one) == ids and rig.arrived(other) == ids


async def _is(found: list[str], wanted: list[str]) -> bool:
    return found == wanted


async def test_a_connection_that_reaches_a_private_address_is_refused() -> None:
    """DNS rebinding: a name that passed the check before the request, then resolved to loopback to
    connect. The transport checks the connection too; here the check before the request is left out
    (as the name having passed it), so only the connection's check can refuse."""

    class ConnectionCheckOnly(WebhookTransport):
        handle_async_request = httpx.AsyncHTTPTransport.handle_async_request

    async with WebhookReceiverTestServer() as receiver:
        async with httpx.AsyncClient(transport=ConnectionCheckOnly()) as client:
            with pytest.raises(PrivateAddressRefused):
                await client.post(receiver.url("/rebound"), content=b"{}")
        assert receiver.received == []
        async with httpx.AsyncClient() as client:  # the same request, unchecked, arrives
            assert (await client.post(receiver.url("/rebound"), content=b"{}")).status_code == 204
        assert len(receiver.received) == 1


async def test_delivery_checks_the_target_again() -> None:
    """A target that was public when registered and is private now (its name moved) is refused at
    delivery, before anything is sent."""
    sender = Sender(WebhookSettings())
    try:
        async with WebhookReceiverTestServer() as receiver:
            record = WebhookRecord(
                id="0123456789abcdef", owner="u", url=receiver.url("/moved"), sealed_secret="",
                created_at=c.now(), start_sequence=1, slot="x.0",
            )  # fmt: skip
            error = await sender.send(record, "whsec_x", "e1", b"{}", 1)
        assert error is not None and error.startswith("refused")
        assert receiver.received == []
    finally:
        await sender.close()


def test_public_addresses() -> None:
    assert is_public("93.184.215.14") and is_public("2606:4700::1111")
    for address in ("127.0.0.1", "10.0.0.1", "172.16.3.4", "192.168.1.1", "169.254.169.254", "::1",
                    "fe80::1%eth0", "::ffff:127.0.0.1", "100.64.0.1", "224.0.0.1", "0.0.0.0"):  # fmt: skip
        assert not is_public(address), address
