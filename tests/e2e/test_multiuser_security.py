"""A server many users share: one user's key never reaches another's settings or memories.

Each test is a finding of the red-team run against `make run`, on real processes: shared settings
changed by any user's admin key (and the model key sent to a URL of theirs), an import that took
another user's memory through an upper-case id, REST ignoring an app's pause and permissions, and
base URLs that reached this machine's own services and echoed their answers."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import ToolFailed, mcp_client, new_key

from openmemory_testing import (
    RecordedOpenAITestServer,
    RecordedReply,
    RunningSystem,
    eventually,
    recorded,
    start_system,
    unique,
)

OPERATOR = "read,write,admin,operator"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """A system with the default (strict) outbound rules."""
    system = start_system(tmp_path_factory.mktemp("multi") / "data")
    yield system
    system.stop()


def admin_api(system: RunningSystem, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=system.admin_url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def variants(memory_id: str) -> list[str]:
    """Every spelling of one UUID that the stores take as the same point."""
    value = uuid.UUID(memory_id)
    return [str(value).upper(), "{" + str(value) + "}", value.urn, value.hex, value.hex.upper()]


# ---- V1: shared settings need the operator scope; a model key goes only where it was given -------


async def test_an_admin_key_cannot_read_or_change_the_shared_settings(shared: RunningSystem) -> None:
    mallory = unique("mallory")
    async with admin_api(shared, new_key(shared, mallory, scopes="read,write,admin")) as http:
        assert (await http.get("/settings")).status_code == 403
        change = {"llm": {"extractor": "llm", "base_url": "https://93.184.216.34/v1"}}
        refused = await http.put("/settings", json=change)
        assert refused.status_code == 403 and "operator" in refused.json()["detail"]
        # Nor can it mint itself a key with more than it has.
        minted = await http.post("/keys", json={"scopes": ["read", "operator"]})
        assert minted.status_code == 403
    async with admin_api(shared, shared.first_key()) as http:  # `make run`'s first key operates
        settings = (await http.get("/settings")).json()
        assert settings["llm"]["extractor"] == "local" and settings["llm"]["base_url"] is None
    operator = new_key(shared, unique("op"), scopes="read,operator")  # `keys create --scopes operator`
    async with admin_api(shared, operator) as http:
        assert (await http.get("/settings")).status_code == 200
        assert (await http.get("/keys")).status_code == 403  # operating is not administering a user


class HeaderRecordingTestServer(RecordedOpenAITestServer):
    """The recorded-response OpenAI test server, also keeping each request's Authorization header."""

    def __init__(self, replies: list[RecordedReply]) -> None:
        super().__init__(replies)
        self.authorizations: list[str] = []

    async def _completions(self, request: Any) -> Any:
        self.authorizations.append(request.headers.get("authorization", ""))
        return await super()._completions(request)


class LeakyUpstreamTestServer(RecordedOpenAITestServer):
    """An OpenAI-compatible *test server* standing in for an internal service that answers every
    call with an error whose text holds a secret, as the red-team's loopback service did."""

    async def _completions(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        self.requests.append(await request.json())
        detail = {"error": {"message": "internal-only: db_password=hunter2", "type": "internal"}}
        return JSONResponse(detail, status_code=400)


@pytest.fixture
def private_allowed(tmp_path: Path) -> Iterator[RunningSystem]:
    """A system whose operator allows private URLs: the recorded-response test servers run on
    loopback."""
    system = start_system(tmp_path / "data", extra_env={"OPENMEMORY_ALLOW_PRIVATE_URLS": "true"})
    yield system
    system.stop()


async def test_a_saved_model_key_is_never_sent_to_another_url(private_allowed: RunningSystem) -> None:
    system = private_allowed
    secret = "sk-test-" + unique("owner")
    reply = [RecordedReply(recorded("extract_lisbon_update.json"))]
    async with (
        HeaderRecordingTestServer(reply) as owners,
        HeaderRecordingTestServer(reply) as attackers,
        admin_api(system, new_key(system, unique("op"), scopes=OPERATOR)) as http,
    ):
        saved = await http.put(
            "/settings", json={"llm": {"extractor": "llm", "base_url": owners.base_url, "api_key": secret}}
        )
        assert saved.status_code == 200, saved.text

        async def asked(server: HeaderRecordingTestServer) -> list[str]:
            async with mcp_client(system.mcp_url, new_key(system, unique("u"))) as client:
                await client.call("add_memories", text="I moved to Alfama.")
            return server.authorizations

        assert await eventually(lambda: asked(owners), timeout=20, interval=0.5)
        assert owners.authorizations[-1] == f"Bearer {secret}"
        # Pointing the URL elsewhere without the key is refused, and changes nothing.
        moved = await http.put("/settings", json={"llm": {"base_url": attackers.base_url}})
        assert moved.status_code == 422 and "API key again" in moved.json()["detail"]
        assert (await http.get("/settings")).json()["llm"]["base_url"] == owners.base_url
        # With the key cleared it may move; the old key stays behind.
        cleared = await http.put("/settings", json={"llm": {"base_url": attackers.base_url, "api_key": ""}})
        assert cleared.status_code == 200 and cleared.json()["llm"]["api_key_set"] is False
        assert await eventually(lambda: asked(attackers), timeout=20, interval=0.5)
        assert all(secret not in header for header in attackers.authorizations)
    assert secret not in system.log()


async def test_an_upstream_error_is_summarised_never_echoed(private_allowed: RunningSystem) -> None:
    system = private_allowed
    user = unique("echo")
    async with (
        LeakyUpstreamTestServer([]) as upstream,
        admin_api(system, new_key(system, unique("op"), scopes=OPERATOR)) as operator,
        admin_api(system, new_key(system, user, scopes="read,write,admin")) as admin,
    ):
        change = {"llm": {"extractor": "llm", "base_url": upstream.base_url, "api_key": "sk-x"}}
        assert (await operator.put("/settings", json=change)).status_code == 200

        async def refused_by_the_llm() -> str:
            async with mcp_client(system.mcp_url, new_key(system, user)) as client:
                try:
                    await client.call("add_memories", text="I live in Lisbon.")
                except ToolFailed as exc:
                    return str(exc)
            return ""

        message = str(await eventually(refused_by_the_llm, timeout=30, interval=0.5))
        assert "HTTP 400" in message and "hunter2" not in message and "internal-only" not in message
        letters = (await admin.get("/dead-letters")).json()
        assert letters and all("hunter2" not in letter["error"] for letter in letters)
    assert "hunter2" not in system.log()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{gateway}/mcp",
        "http://localhost:{gateway}/v1",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7:8080/v1",
        "http://[::1]:{gateway}/v1",
    ],
)
async def test_a_base_url_on_this_machines_network_is_refused(shared: RunningSystem, url: str) -> None:
    url = url.format(gateway=shared.gateway_url.rsplit(":", 1)[1])
    async with admin_api(shared, new_key(shared, unique("op"), scopes=OPERATOR)) as http:
        before = (await http.get("/settings")).json()
        for part in ("llm", "embedder"):
            refused = await http.put("/settings", json={part: {"base_url": url}})
            assert refused.status_code == 422, refused.text
            assert "OPENMEMORY_ALLOW_PRIVATE_URLS" in refused.json()["detail"]
        assert (await http.get("/settings")).json() == before


# ---- V2: memory ids are canonical at every door ----------------------------------------------------


def export_of(user: str, memories: list[dict[str, Any]]) -> bytes:
    now = "2026-01-01T00:00:00+00:00"
    rows = [
        {"id": m["id"], "user_id": user, "app": "import", "text": m["text"], "created_at": now,
         "updated_at": now, "content_hash": uuid.uuid4().hex, "request_id": uuid.uuid4().hex}
        for m in memories
    ]  # fmt: skip
    document = {"format": "openmemory-export", "version": 1, "user_id": user, "embedding_model": "x",
                "memories": rows}  # fmt: skip
    return json.dumps(document).encode()


async def test_an_import_cannot_take_another_users_memory_in_any_spelling(shared: RunningSystem) -> None:
    alice, bob = unique("alice"), unique("bob")
    async with mcp_client(shared.mcp_url, new_key(shared, alice)) as alices:
        added = await alices.call("add_memories", text="Alice's locker code is 4512.", infer=False)
        alice_id = added["results"][0]["id"]
        spellings = variants(alice_id)
        forged = [{"id": s, "text": f"Bob owns this now ({n})."} for n, s in enumerate(spellings)]
        async with admin_api(shared, new_key(shared, bob, scopes="read,write,admin")) as bobs:
            done = await bobs.post("/import", content=export_of(bob, forged))
            assert done.status_code == 200, done.text
            bob_ids = {m["id"] for m in (await bobs.get("/memories")).json()["memories"]}
            assert len(bob_ids) == len(spellings) and alice_id not in bob_ids
            for spelling in spellings:  # and no spelling reaches Alice's memory through REST
                assert (await bobs.get(f"/memories/{spelling}")).status_code == 404, spelling
                edit = await bobs.patch(f"/memories/{spelling}", json={"text": "Bob was here."})
                assert edit.status_code == 404, spelling
        mine = await alices.call("get_memory", memory_id=alice_id)
        assert mine["memory"]["memory"] == "Alice's locker code is 4512."
        assert [e["event"] for e in mine["history"]] == ["ADD"]
        for spelling in spellings:  # each spelling is the same memory for its owner
            found = await alices.call("get_memory", memory_id=spelling)
            assert found["memory"]["id"] == alice_id, spelling


async def test_an_owner_may_use_any_spelling_of_an_id(shared: RunningSystem) -> None:
    user = unique("own")
    key = new_key(shared, user, scopes="read,write,admin")
    async with mcp_client(shared.mcp_url, key) as client, admin_api(shared, key) as http:
        first = (await client.call("add_memories", text="I keep bees.", infer=False))["results"][0]["id"]
        second = (await client.call("add_memories", text="I grow figs.", infer=False))["results"][0]["id"]
        edited = await http.patch(f"/memories/{first.upper()}", json={"text": "I keep two hives of bees."})
        assert edited.status_code == 200, edited.text
        assert edited.json()["results"][0]["id"] == first
        deleted = await client.call("delete_memories", memory_ids=[uuid.UUID(second).urn, second.upper()])
        assert [(r["id"], r["event"]) for r in deleted["results"]] == [(second, "DELETE")]
        assert await client.texts() == ["I keep two hives of bees."]


# ---- V3: an app's pause and permissions hold on REST as on MCP -------------------------------------


@pytest.fixture
async def paused_cursor(
    shared: RunningSystem,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, str]]:
    """A user, their account-wide admin key's client, a cursor-bound admin key's client, and one
    memory of theirs."""
    user = unique("apps")
    owner = admin_api(shared, new_key(shared, user, scopes="read,write,admin"))
    cursor_key = new_key(shared, user, app="cursor", scopes="read,write,admin")
    cursor = admin_api(shared, cursor_key)
    async with mcp_client(shared.mcp_url, cursor_key) as mcp:
        memory_id = (await mcp.call("add_memories", text="I cycle to work.", infer=False))["results"][0]["id"]
    yield owner, cursor, memory_id
    await owner.aclose()
    await cursor.aclose()


async def test_a_paused_app_cannot_read_or_edit_through_rest(
    shared: RunningSystem, paused_cursor: tuple[httpx.AsyncClient, httpx.AsyncClient, str]
) -> None:
    owner, cursor, memory_id = paused_cursor
    assert (await owner.patch("/apps/cursor", json={"paused": True})).status_code == 200
    for method, path, body in [
        ("GET", "/memories", None),
        ("GET", f"/memories/{memory_id}", None),
        ("PATCH", f"/memories/{memory_id}", {"text": "I drive to work."}),
        ("POST", "/memories/actions", {"action": "archive", "ids": [memory_id]}),
        ("GET", "/export", None),
        ("GET", "/stats", None),
        ("GET", "/activity", None),
    ]:
        refused = await cursor.request(method, path, json=body)
        assert refused.status_code == 403 and "paused" in refused.json()["detail"], (method, path)
    memories = (await owner.get("/memories")).json()["memories"]
    assert [(m["text"], m["state"]) for m in memories] == [("I cycle to work.", "active")]  # unchanged
    # The user can always resume it (administration is not an app's memory access).
    assert (await cursor.patch("/apps/cursor", json={"paused": False})).status_code == 200
    assert (await cursor.get("/memories")).status_code == 200


async def test_an_apps_read_and_write_permissions_hold_on_rest(
    shared: RunningSystem, paused_cursor: tuple[httpx.AsyncClient, httpx.AsyncClient, str]
) -> None:
    owner, cursor, memory_id = paused_cursor
    assert (await owner.patch("/apps/cursor", json={"can_read": False})).status_code == 200
    assert (await cursor.get("/memories")).status_code == 403
    assert (await cursor.get("/export")).status_code == 403
    assert (await owner.patch("/apps/cursor", json={"can_read": True, "can_write": False})).status_code == 200
    assert (await cursor.get("/memories")).status_code == 200
    edit = await cursor.patch(f"/memories/{memory_id}", json={"text": "I drive to work."})
    assert edit.status_code == 403 and "write" in edit.json()["detail"]
    upload = export_of("x", [{"id": str(uuid.uuid4()), "text": "Imported while write was off."}])
    assert (await cursor.post("/import", content=upload)).status_code == 403
    texts = [m["text"] for m in (await owner.get("/memories")).json()["memories"]]
    assert texts == ["I cycle to work."]
