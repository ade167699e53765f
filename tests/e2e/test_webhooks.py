"""Webhooks through the whole system: registered on the admin API, fed by memories added over MCP,
delivered by `openmemory run` to a local receiver (`WebhookReceiverTestServer`, the test stand-in
for a person's endpoint; private targets allowed by the system's setting for this test).

What must hold: every event of a user reaches that user's endpoint, signed with its secret, in the
order of the events stream; an endpoint that is down gets everything once it is back (at least
once, nothing lost, still in order); an endpoint that keeps failing ends in the failed deliveries
after its attempts, can be sent again from there, and holds back no other webhook; another user
sees and touches none of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
from e2e_support import mcp_client, metric_total, new_key, stored_events

from openmemory_core.servers import embedded_nats, start_embedded
from openmemory_testing import RunningSystem, eventually, start_system, stop_all, unique
from openmemory_testing.webhook_receiver import ReceivedDelivery, WebhookReceiverTestServer

MAX_ATTEMPTS = 8
SETTINGS = {
    "OPENMEMORY_WEBHOOKS_ALLOW_PRIVATE": "true",  # the receiver is on loopback, over plain http
    "OPENMEMORY_WEBHOOKS_BACKOFF_BASE_SECONDS": "0.5",
    "OPENMEMORY_WEBHOOKS_BACKOFF_MAX_SECONDS": "2",
    "OPENMEMORY_WEBHOOKS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "OPENMEMORY_WEBHOOKS_REFRESH_SECONDS": "0.2",
}


def signed_by(secret: str, delivery: ReceivedDelivery) -> bool:
    """What a receiver does (README, "Webhooks"), written out here rather than imported."""
    fields = dict(part.split("=", 1) for part in delivery.headers["openmemory-signature"].split(","))
    expected = hmac.new(
        secret.encode(), f"{fields['t']}.".encode() + delivery.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300


def first_seen(deliveries: list[ReceivedDelivery]) -> list[str]:
    """Event ids in the order they first arrived (a repeat of a delivery is allowed: at least once)."""
    seen: list[str] = []
    for delivery in deliveries:
        event_id = delivery.payload["event"]["event_id"]
        assert delivery.headers["openmemory-event-id"] == event_id
        if event_id not in seen:
            seen.append(event_id)
    return seen


async def register(admin: httpx.AsyncClient, key: str, url: str, **more: Any) -> dict[str, Any]:
    made = await admin.post(
        "/api/v1/webhooks", json={"url": url, **more}, headers={"Authorization": f"Bearer {key}"}
    )
    assert made.status_code == 201, made.text
    hook: dict[str, Any] = made.json()
    return hook


async def test_deliveries_are_signed_in_order_survive_an_outage_and_park_when_failing(tmp_path: Path) -> None:
    system = start_system(tmp_path / "data", extra_env=SETTINGS)
    try:
        async with (
            WebhookReceiverTestServer() as receiver,
            httpx.AsyncClient(base_url=system.admin_url, timeout=30) as admin,
        ):
            users = [unique(), unique()]
            admin_keys = [new_key(system, u, scopes="read,write,admin") for u in users]
            paths = ["/hooks/first", "/hooks/second"]
            secrets = [
                (await register(admin, k, receiver.url(p)))["secret"]
                for k, p in zip(admin_keys, paths, strict=True)
            ]
            added: dict[str, list[str]] = {u: [] for u in users}

            async def add(round_: int) -> None:
                for user, key in zip(users, admin_keys, strict=True):
                    async with mcp_client(system.mcp_url, key) as client:
                        for n in range(2):
                            done = await client.call(
                                "add_memories", text=f"I visited the city of Town{round_}x{n} in {user}."
                            )
                            added[user] += [r["id"] for r in done["results"] if r["event"] == "ADD"]

            async def all_delivered() -> bool:
                """Each user's endpoint got every event of the user's stored so far, in stream order
                (and the stream holds every memory added)."""
                stored = await stored_events(nats_url(system), users)
                for user, path in zip(users, paths, strict=True):
                    assert set(added[user]) <= {str(e.memory_id) for e in stored[user]}
                    if first_seen(receiver.at(path)) != [e.event_id for e in stored[user]]:
                        return False
                return True

            # Signed, the user's own events only, in the stream's order.
            await add(1)
            assert all(len(added[u]) >= 2 for u in users)
            await eventually(all_delivered, timeout=60)
            for user, path, secret in zip(users, paths, secrets, strict=True):
                for delivery in receiver.at(path):
                    assert signed_by(secret, delivery)
                    assert delivery.payload["event"]["user_id"] == user
                    assert delivery.headers["openmemory-webhook-id"] == delivery.payload["webhook_id"]
                assert not any(signed_by(secret, d) for p in paths if p != path for d in receiver.at(p))

            # The endpoint goes away while memories change; once back, it gets every one, in order.
            retries = metric_total(system.gateway_url, "openmemory_webhook_deliveries_total", outcome="retry")
            await receiver.stop()
            await add(2)
            assert all(len(added[u]) >= 4 for u in users)

            async def retried() -> bool:
                now = metric_total(system.gateway_url, "openmemory_webhook_deliveries_total", outcome="retry")
                return now > retries

            await eventually(retried, timeout=60)
            await receiver.start()
            await eventually(all_delivered, timeout=60)
            assert any(int(d.headers["openmemory-delivery-attempt"]) > 1 for d in receiver.received)
            for secret, path in zip(secrets, paths, strict=True):
                assert all(signed_by(secret, d) for d in receiver.at(path))

            # An endpoint that keeps failing (for DELETE events only) ends in the failed deliveries
            # after its attempts, while the user's other webhook goes on receiving.
            owner, owner_key = users[0], admin_keys[0]
            failing = await register(admin, owner_key, receiver.url("/hooks/failing"), kinds=["DELETE"])
            receiver.refusing.add("/hooks/failing")
            async with mcp_client(system.mcp_url, owner_key) as client:
                deleted = await client.call("delete_memories", memory_ids=[added[owner][0]])
            assert [r["event"] for r in deleted["results"]] == ["DELETE"]
            await eventually(all_delivered, timeout=60)  # the first webhook is not held back
            headers = {"Authorization": f"Bearer {owner_key}"}

            async def parked() -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = (
                    await admin.get("/api/v1/webhooks/failures", headers=headers)
                ).json()
                return found

            await eventually(parked, timeout=90)
            [failure] = await parked()
            assert failure["webhook_id"] == failing["id"] and failure["change"] == "DELETE"
            assert failure["attempts"] == MAX_ATTEMPTS and "HTTP 500" in failure["error"]
            assert failure["memory_id"] == added[owner][0]
            assert len(receiver.refused) == MAX_ATTEMPTS  # no more attempts after it was set aside
            assert all(d.payload["event"]["change"] == "DELETE" for d in receiver.refused)  # the kinds filter
            listed = (await admin.get("/api/v1/webhooks", headers=headers)).json()
            assert {h["id"]: h["failures"] for h in listed}[failing["id"]] == 1

            # Another user neither sees nor retries nor discards it.
            stranger = {"Authorization": f"Bearer {admin_keys[1]}"}
            assert (await admin.get("/api/v1/webhooks/failures", headers=stranger)).json() == []
            sequence = failure["sequence"]
            assert (
                await admin.post(f"/api/v1/webhooks/failures/{sequence}/retry", headers=stranger)
            ).status_code == 404
            assert (
                await admin.delete(f"/api/v1/webhooks/failures/{sequence}", headers=stranger)
            ).status_code == 404

            # Sent again from there while it still fails: it stays; once the endpoint takes it, it leaves.
            again = await admin.post(f"/api/v1/webhooks/failures/{sequence}/retry", headers=headers)
            assert again.status_code == 503 and "HTTP 500" in again.json()["detail"]
            assert len(await parked()) == 1
            receiver.refusing.clear()
            again = await admin.post(f"/api/v1/webhooks/failures/{sequence}/retry", headers=headers)
            assert again.status_code == 200, again.text
            [redelivered] = receiver.at("/hooks/failing")
            assert signed_by(failing["secret"], redelivered)
            assert redelivered.payload["event"]["event_id"] == failure["event_id"]
            assert await parked() == []
    finally:
        system.stop()


def nats_url(system: RunningSystem) -> str:
    """The running system's NATS (with its credentials), from the endpoints file it wrote."""
    endpoints = json.loads((system.data_dir / "run" / "endpoints.json").read_text())
    return str(endpoints["nats_url"])


async def test_the_admin_process_of_a_split_deployment_delivers(tmp_path: Path, graph_url: str) -> None:
    """Gateway, ingest+search and admin as three processes over one NATS: the admin process alone
    runs the deliveries."""
    nats_proc, shared_nats = await start_embedded(embedded_nats, tmp_path / "nats")
    env = {"OPENMEMORY_NATS_URL": shared_nats, "OPENMEMORY_GRAPH_URL": graph_url, **SETTINGS}
    started: list[RunningSystem] = []
    try:
        for name, target in (("workers", "ingest,search"), ("gateway", "gateway"), ("admin", "admin")):
            started.append(start_system(tmp_path / name, target, env))
        _, gateway, admin_process = started
        user = unique()
        key = new_key(gateway, user, scopes="read,write,admin")
        async with (
            WebhookReceiverTestServer() as receiver,
            httpx.AsyncClient(base_url=admin_process.admin_url, timeout=30) as admin,
        ):
            hook = await register(admin, key, receiver.url("/split"))
            async with mcp_client(gateway.mcp_url, key) as client:
                first = await client.call("add_memories", text="I moved to Oslo in March.")
                second = await client.call("add_memories", text="I speak Norwegian.")
            wanted = [r["id"] for r in first["results"] + second["results"] if r["event"] == "ADD"]
            assert len(wanted) == 2

            async def delivered() -> bool:
                arrived = [d.payload["event"]["memory_id"] for d in receiver.at("/split")]
                return list(dict.fromkeys(arrived)) == wanted  # in order; a repeat is allowed

            await eventually(delivered, timeout=60)
            assert all(signed_by(hook["secret"], d) for d in receiver.at("/split"))
    finally:
        stop_all(started)
        await nats_proc.stop()
