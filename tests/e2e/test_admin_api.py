"""The admin REST API against a running system: what it shows, what it changes, and what MCP
clients see afterwards. Real processes, real HTTP, the official MCP client."""

from __future__ import annotations

import gzip
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from e2e_support import Client, ToolFailed, mcp_client, new_key

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.runtime import read_endpoints
from openmemory_testing import (
    RecordedOpenAITestServer,
    RecordedReply,
    RunningSystem,
    eventually,
    recorded,
    unique,
)


class Admin:
    """One user's view of the admin API, by API key."""

    def __init__(self, system: RunningSystem, key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=system.admin_url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def send(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = await self.http.request(method, path, json=body)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None


@pytest_asyncio.fixture
async def user(all_in_one: RunningSystem) -> AsyncIterator[tuple[str, Admin, str]]:
    """A fresh user with an admin key (REST) and a key for MCP as app 'cursor'."""
    name = unique("adm")
    admin = Admin(all_in_one, new_key(all_in_one, name, scopes="read,write,admin"))
    yield name, admin, new_key(all_in_one, name, app="cursor")
    await admin.http.aclose()


async def add(client: Client, text: str) -> str:
    result = await client.call("add_memories", text=text, infer=False)
    return str(result["results"][0]["id"])


async def test_every_route_needs_a_key_or_session(all_in_one: RunningSystem) -> None:
    async with httpx.AsyncClient(base_url=all_in_one.admin_url, timeout=10) as http:
        for method, path in [
            ("GET", "/api/v1/memories"), ("GET", "/api/v1/stats"), ("GET", "/api/v1/apps"),
            ("GET", "/api/v1/keys"), ("GET", "/api/v1/settings"), ("GET", "/api/v1/export"),
            ("GET", "/api/v1/dead-letters"), ("GET", "/api/v1/activity"), ("GET", "/api/v1/graph"),
            ("POST", "/api/v1/memories/actions"), ("POST", "/api/v1/import"), ("PUT", "/api/v1/settings"),
        ]:  # fmt: skip
            response = await http.request(
                method, path, headers={"Authorization": "Bearer om_00000000_" + "x" * 43}
            )
            assert response.status_code == 401, (path, response.text)
            assert (await http.request(method, path)).status_code == 401, path
        page = await http.get("/memories", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert (await http.get("/api/v1/status")).json() == {"bus_connected": True}
        schema = (await http.get("/openapi.json")).json()
        assert {"/api/v1/memories", "/api/v1/import", "/api/v1/dead-letters"} <= set(schema["paths"])


async def test_browse_filters_sorts_and_pages(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    name, admin, cursor_key = user
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        for text in [
            "I like green tea.",
            "I play chess on Sundays.",
            "My dentist is in Lyon.",
            "I like black coffee.",
        ]:
            await add(cursor, text)
        async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, name, app="claude")) as claude:
            await add(claude, "I like jasmine tea.")
        every = await admin.get("/memories")
        assert every["total"] == 5
        assert next(m["text"] for m in every["memories"]) == "I like jasmine tea."  # newest first
        oldest = await admin.get("/memories", sort="created_asc", page_size=2, page=1)
        assert [m["text"] for m in oldest["memories"]] == ["I like green tea.", "I play chess on Sundays."]
        second = await admin.get("/memories", sort="created_asc", page_size=2, page=2)
        assert [m["text"] for m in second["memories"]] == ["My dentist is in Lyon.", "I like black coffee."]
        tea = await admin.get("/memories", text="TEA")
        assert sorted(m["text"] for m in tea["memories"]) == ["I like green tea.", "I like jasmine tea."]
        assert [m["text"] for m in (await admin.get("/memories", app="claude"))["memories"]] == [
            "I like jasmine tea."
        ]
        future = await admin.get("/memories", since="2999-01-01T00:00:00Z")
        assert future["total"] == 0
        stats = await admin.get("/stats")
        assert stats["total"] == 5 and {a["name"]: a["count"] for a in stats["by_app"]} == {
            "cursor": 4,
            "claude": 1,
        }
        assert sum(d["count"] for d in stats["per_day"]) == 5
        bad = await admin.http.get("/memories", params={"sort": "sideways"})
        assert bad.status_code == 422


async def test_edit_pause_archive_and_delete_change_what_mcp_search_returns(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    _, admin, cursor_key = user
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        memory_id = await add(cursor, "I live in Lisbon.")
        other = await add(cursor, "I collect vinyl records.")
        outcome = await admin.send("PATCH", f"/memories/{memory_id}", {"text": "I live in Berlin."})
        assert outcome["status"] == "applied"
        assert "I live in Berlin." in await cursor.texts("Where does the user live?")
        assert "I live in Lisbon." not in await cursor.texts("Where does the user live?")
        detail = await admin.get(f"/memories/{memory_id}")
        assert [e["change"] for e in detail["history"]] == ["ADD", "UPDATE"]
        assert detail["memory"]["entities"] == ["Berlin"]
        graph = await admin.get("/graph", entity="User")
        assert {(r["relation"], r["entity"]) for r in graph["relations"]} == {("LIVES_IN", "Berlin")}

        await admin.send("POST", "/memories/actions", {"action": "pause", "ids": [memory_id, other]})
        assert await cursor.texts("Berlin") == [] and await cursor.texts("vinyl") == []
        listed = await admin.get("/memories", state="paused")
        assert {m["id"] for m in listed["memories"]} == {memory_id, other}
        await admin.send("POST", "/memories/actions", {"action": "resume", "ids": [other]})
        assert await cursor.texts("vinyl") == ["I collect vinyl records."]
        await admin.send("POST", "/memories/actions", {"action": "archive", "ids": [other]})
        assert await cursor.texts("vinyl") == []
        await admin.send("DELETE", f"/memories/{memory_id}")
        assert (await admin.get(f"/memories/{memory_id}"))["memory"] is None
        assert (await admin.get("/memories"))["total"] == 1


async def test_bad_input_is_refused_and_changes_nothing(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    _name, admin, cursor_key = user
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        memory_id = await add(cursor, "I own a red bicycle.")
        before = await admin.get("/memories")
        await admin.send("PATCH", f"/memories/{memory_id}", {"text": ""}, expect=422)
        await admin.send(
            "PATCH", f"/memories/{memory_id}", {"text": "x" * (c.MAX_TEXT_CHARS + 1)}, expect=422
        )
        await admin.send("PATCH", "/memories/not-an-id", {"text": "hello"}, expect=422)
        await admin.send("POST", "/memories/actions", {"action": "explode", "ids": [memory_id]}, expect=422)
        await admin.send("POST", "/memories/actions", {"action": "delete", "ids": []}, expect=422)
        # Another user's memory: refused as unknown, and the whole request changes nothing.
        stranger = unique("adm")
        async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, stranger)) as theirs:
            their_id = await add(theirs, "I keep bees.")
            await admin.send(
                "POST", "/memories/actions", {"action": "delete", "ids": [memory_id, their_id]}, expect=404
            )
            await admin.send("PATCH", f"/memories/{their_id}", {"text": "I keep wasps."}, expect=404)
            assert await theirs.texts() == ["I keep bees."]
        assert await admin.get("/memories") == before
        assert (await admin.http.get("/graph", params={"entity": "\x00"})).status_code == 422
        bad_import = await admin.http.post("/import", content=b'{"format": "something-else"}')
        assert bad_import.status_code == 422
        broken = await admin.http.post("/import", content=b"PK\x03\x04 not really a zip")
        assert broken.status_code == 422
        assert await admin.get("/memories") == before


async def test_apps_pause_and_permissions_are_enforced_by_the_gateway(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    _name, admin, cursor_key = user
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        await add(cursor, "I am learning Portuguese.")
        await cursor.texts("Portuguese")
        apps = {a["app"]: a for a in await admin.get("/apps")}
        assert apps["cursor"]["memories_created"] == 1 and apps["cursor"]["memories_accessed"] >= 1
        await admin.send("PATCH", "/apps/cursor", {"paused": True})
        with pytest.raises(ToolFailed, match="paused"):
            await cursor.texts("Portuguese")
        with pytest.raises(ToolFailed, match="paused"):
            await add(cursor, "I am learning Italian.")
        await admin.send("PATCH", "/apps/cursor", {"paused": False, "can_write": False})
        assert await cursor.texts("Portuguese") == ["I am learning Portuguese."]
        with pytest.raises(ToolFailed, match="write"):
            await add(cursor, "I am learning Italian.")
        await admin.send("PATCH", "/apps/cursor", {"can_write": True, "can_read": False})
        with pytest.raises(ToolFailed, match="read"):
            await cursor.texts("Portuguese")
        # The same app name of another user is not affected.
        async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, unique("adm"), app="cursor")) as other:
            await add(other, "I am learning Greek.")
            assert await other.texts("Greek") == ["I am learning Greek."]
        await admin.send("PATCH", "/apps/cursor", {"can_read": True})
        detail = await admin.get("/apps/cursor")
        assert detail["recent_memories"][0]["text"] == "I am learning Portuguese."
        assert detail["recent_access"] and detail["recent_access"][0]["kind"] == "search"
        memory_id = detail["recent_memories"][0]["id"]
        log = (await admin.get(f"/memories/{memory_id}"))["access_log"]
        assert {(a["app"], a["kind"], a["query"]) for a in log} >= {("cursor", "search", "Portuguese")}


async def test_search_refuses_a_paused_app_itself(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    """Defence in depth: a query that reaches search directly, naming a paused app, is refused."""
    name, admin, cursor_key = user
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        await add(cursor, "I sail on weekends.")
        await admin.send("PATCH", "/apps/cursor", {"paused": True})
        bus = await Bus.connect(_nats_url(all_in_one), "test", c.DEFAULT_PARTITIONS)
        try:
            request = c.SearchRequest(user_id=name, app="cursor", query="sail")
            with pytest.raises(Exception, match="paused"):
                await bus.query(c.Query.SEARCH, request, c.SearchResponse, 10)
            allowed = c.SearchRequest(user_id=name, app="claude", query="sail")
            assert [
                h.memory.text for h in (await bus.query(c.Query.SEARCH, allowed, c.SearchResponse, 10)).hits
            ] == ["I sail on weekends."]
        finally:
            await bus.close()


def _nats_url(system: RunningSystem) -> str:
    endpoints = read_endpoints(system.data_dir)
    assert endpoints is not None
    return str(endpoints["nats_url"])


async def test_keys_are_shown_once_track_last_use_and_revoke_at_once(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    name, admin, _ = user
    made = await admin.send(
        "POST",
        "/keys",
        {"app": "windsurf", "scopes": ["read"], "label": "ws", "expires_in_days": 30},
        expect=201,
    )
    token, prefix = made["api_key"], made["key"]["prefix"]
    assert token.startswith(f"om_{prefix}_")
    listed = {k["prefix"]: k for k in await admin.get("/keys")}
    assert token not in json.dumps(listed) and listed[prefix]["last_used_at"] is None
    assert listed[prefix]["expires_at"] is not None and listed[prefix]["scopes"] == ["read"]
    async with mcp_client(all_in_one.mcp_url, token) as windsurf:
        assert await windsurf.texts() == []
        with pytest.raises(ToolFailed, match="write"):
            await add(windsurf, "I am not allowed to write.")
    used = {k["prefix"]: k for k in await admin.get("/keys")}
    assert used[prefix]["last_used_at"] is not None
    await admin.send("DELETE", f"/keys/{prefix}")
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(all_in_one.mcp_url, headers={"Authorization": f"Bearer {token}"}, json={})
        assert refused.status_code == 401
    # Another user's key cannot be revoked by prefix.
    outsider = Admin(all_in_one, new_key(all_in_one, unique("adm"), scopes="read,write,admin"))
    theirs = await outsider.send("POST", "/keys", {}, expect=201)
    await admin.send("DELETE", f"/keys/{theirs['key']['prefix']}", expect=404)
    assert not {k["prefix"]: k for k in await outsider.get("/keys")}[theirs["key"]["prefix"]]["revoked"]
    # A key without the admin scope cannot manage keys.
    reader = Admin(all_in_one, new_key(all_in_one, name, scopes="read"))
    await reader.send("GET", "/keys", expect=403)
    await reader.send(
        "POST", "/memories/actions", {"action": "delete", "ids": [c.memory_id_for("x", 0)]}, expect=403
    )
    connect = await admin.send("POST", "/connect", {"client": "cursor"}, expect=201)
    assert connect["api_key"] in connect["snippets"]["cursor"] and set(connect["snippets"]) >= {
        "claude", "cursor", "windsurf", "cline", "vscode", "claude-code", "npx install-mcp"
    }  # fmt: skip


async def test_export_wipe_import_gives_the_same_search_results(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    _, admin, cursor_key = user
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        for text in [
            "I live in Porto.",
            "My sister Ana is a doctor.",
            "I play the cello.",
            "I am allergic to nuts.",
        ]:
            await add(cursor, text)
        paused = await add(cursor, "I used to smoke.")
        await admin.send("POST", "/memories/actions", {"action": "pause", "ids": [paused]})
        queries = ["Where does the user live?", "music instrument", "family", "food allergy"]
        before = [await cursor.call("search_memory", query=q) for q in queries]
        export = (await admin.http.get("/export")).content
        document = json.loads(export)
        assert document["format"] == "openmemory-export" and len(document["memories"]) == 5
        assert document["embedding_model"] and document["history"]
        await cursor.call("delete_all_memories", confirm=True)
        assert (await admin.get("/memories"))["total"] == 0
        done = await admin.http.post("/import", content=export)
        assert done.status_code == 200, done.text
        assert done.json()["memories"] == 5 and done.json()["accepted"] == 0
        after = [await cursor.call("search_memory", query=q) for q in queries]
        ranked = lambda found: [(m["id"], m["memory"]) for m in found["results"]]  # noqa: E731
        assert [ranked(f) for f in after] == [ranked(f) for f in before]
        restored = {m["id"]: m["state"] for m in (await admin.get("/memories"))["memories"]}
        assert restored[paused] == "paused" and len(restored) == 5


def openmemory_zip(with_jsonl: bool) -> tuple[bytes, str]:
    """An export zip in the layout of the OpenMemory server's backup export, and its first id."""
    app_id, cat_id, *ids = (str(uuid.uuid4()) for _ in range(5))
    memories = [
        {"id": ids[0], "user_id": "x", "app_id": app_id,
         "content": "Prefers dark mode in every editor", "metadata": {"source": "om"}, "state": "active",
         "created_at": "2025-03-01T10:00:00+00:00", "updated_at": "2025-03-01T10:00:00+00:00",
         "archived_at": None, "deleted_at": None, "category_ids": [cat_id]},
        {"id": ids[1], "user_id": "x", "app_id": app_id,
         "content": "Works at Acme as a data engineer", "metadata": {}, "state": "archived",
         "created_at": "2025-04-01T10:00:00+00:00", "updated_at": "2025-04-02T10:00:00+00:00",
         "archived_at": "2025-04-02T10:00:00+00:00", "deleted_at": None, "category_ids": []},
        {"id": ids[2], "user_id": "x", "app_id": app_id,
         "content": "Old deleted thing", "metadata": {}, "state": "deleted",
         "created_at": "2025-04-01T10:00:00+00:00", "updated_at": "2025-04-02T10:00:00+00:00",
         "archived_at": None, "deleted_at": "2025-04-02T10:00:00+00:00", "category_ids": []},
    ]  # fmt: skip
    manifest = {
        "user": {"id": "u", "user_id": "x"},
        "apps": [{"id": app_id, "name": "Claude Desktop", "is_active": True}],
        "categories": [{"id": cat_id, "name": "preferences", "description": None}],
        "memories": memories, "memory_categories": [], "status_history": [], "access_controls": [],
        "export_meta": {"version": "1"},
    }  # fmt: skip
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("memories.json", json.dumps(manifest))
        if with_jsonl:
            lines = [
                {"id": m["id"], "content": m["content"], "metadata": m["metadata"], "state": m["state"],
                 "created_at": m["created_at"], "updated_at": m["updated_at"], "app": "Claude Desktop",
                 "categories": ["preferences"] if m["category_ids"] else []}
                for m in memories
            ]  # fmt: skip
            archive.writestr("memories.jsonl.gz", gzip.compress("\n".join(map(json.dumps, lines)).encode()))
    return out.getvalue(), ids[0]


@pytest.mark.parametrize("with_jsonl", [True, False])
async def test_an_openmemory_export_zip_imports(
    user: tuple[str, Admin, str], all_in_one: RunningSystem, with_jsonl: bool
) -> None:
    _, admin, cursor_key = user
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        upload, first_id = openmemory_zip(with_jsonl)
        done = await admin.http.post("/import", content=upload)
        assert done.status_code == 200, done.text
        assert done.json()["source"] == "openmemory-zip" and done.json()["memories"] == 2
        listed = {m["text"]: m for m in (await admin.get("/memories"))["memories"]}
        assert set(listed) == {"Prefers dark mode in every editor", "Works at Acme as a data engineer"}
        dark = listed["Prefers dark mode in every editor"]
        assert dark["app"] == "Claude-Desktop" and dark["categories"] == ["preferences"]
        assert dark["created_at"].startswith("2025-03-01") and dark["id"] == first_id
        assert listed["Works at Acme as a data engineer"]["state"] == "archived"
        found = await cursor.texts("dark mode editor")
        assert found[0] == "Prefers dark mode in every editor"
        assert "Works at Acme as a data engineer" not in await cursor.texts("Acme data engineer")  # archived
    # The same file imported by another user: new ids there, nothing of the first user touched.
    outsider = Admin(all_in_one, new_key(all_in_one, unique("adm"), scopes="read,write,admin"))
    assert (await outsider.http.post("/import", content=upload)).status_code == 200
    theirs = {m["text"]: m["id"] for m in (await outsider.get("/memories"))["memories"]}
    assert theirs["Prefers dark mode in every editor"] != first_id
    assert {m["id"] for m in (await admin.get("/memories"))["memories"]} == {m["id"] for m in listed.values()}


async def test_a_failed_command_is_listed_retried_and_discarded(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    name, admin, _ = user
    bus = await Bus.connect(_nats_url(all_in_one), "test", c.DEFAULT_PARTITIONS)
    try:
        poison = c.EditCommand(user_id=name, app="test", memory_id=c.memory_id_for("none", 0), text="x")
        with pytest.raises(Exception, match="no such memory"):
            await bus.submit(poison, 10)
    finally:
        await bus.close()
    (letter,) = await admin.get("/dead-letters")
    assert (
        letter["kind"] == "edit"
        and "no such memory" in letter["error"]
        and letter["request_id"] == poison.request_id
    )
    await admin.send("POST", f"/dead-letters/{letter['sequence']}/retry")

    async def parked_again() -> list[Any]:
        found = await admin.get("/dead-letters")
        return [x for x in found if x["sequence"] != letter["sequence"]]

    (again,) = await eventually(parked_again)  # type: ignore[misc]
    assert again["request_id"] == poison.request_id
    await admin.send("DELETE", f"/dead-letters/{again['sequence']}", expect=204)
    assert await admin.get("/dead-letters") == []
    outsider = Admin(all_in_one, new_key(all_in_one, unique("adm"), scopes="read,write,admin"))
    assert await outsider.get("/dead-letters") == []  # never another user's


async def test_a_session_needs_its_csrf_token_for_writes(
    user: tuple[str, Admin, str], all_in_one: RunningSystem
) -> None:
    name, _, cursor_key = user
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        memory_id = await add(cursor, "I drink oat milk.")
        key = new_key(all_in_one, name, scopes="read,write,admin")
        async with httpx.AsyncClient(base_url=all_in_one.admin_url, timeout=30) as browser:
            signed = await browser.post("/api/v1/session", json={"api_key": key})
            assert signed.status_code == 200 and "httponly" in signed.headers["set-cookie"].lower()
            csrf = signed.json()["csrf_token"]
            assert (await browser.get("/api/v1/memories")).json()["total"] == 1
            body = {"action": "pause", "ids": [memory_id]}
            assert (await browser.post("/api/v1/memories/actions", json=body)).status_code == 403
            wrong = await browser.post(
                "/api/v1/memories/actions", json=body, headers={"X-CSRF-Token": "nope"}
            )
            assert wrong.status_code == 403
            foreign = await browser.post(
                "/api/v1/memories/actions",
                json=body,
                headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
            )
            assert foreign.status_code == 403
            assert await cursor.texts("oat milk") == ["I drink oat milk."]
            ok = await browser.post("/api/v1/memories/actions", json=body, headers={"X-CSRF-Token": csrf})
            assert ok.status_code == 200
            assert await cursor.texts("oat milk") == []
            assert (await browser.get("/memories")).status_code == 200
            tampered = browser.cookies["om_session"][:-2] + "xx"
            browser.cookies.set("om_session", tampered)
            assert (await browser.get("/api/v1/memories")).status_code == 401
            assert (await browser.get("/memories", follow_redirects=False)).status_code == 303


async def test_saved_llm_settings_apply_to_ingest_without_a_restart_and_keys_stay_secret(
    system_factory: list[RunningSystem], tmp_path: Path
) -> None:
    system = start_fresh(system_factory, tmp_path, {"OPENMEMORY_ALLOW_PRIVATE_URLS": "true"})
    name = unique("set")
    admin = Admin(system, new_key(system, name, scopes="read,write,admin,operator"))
    secret = "sk-test-" + unique("secret")
    async with RecordedOpenAITestServer([RecordedReply(recorded("extract_lisbon_update.json"))]) as llm:
        saved = await admin.send(
            "PUT", "/settings", {"llm": {"extractor": "llm", "base_url": llm.base_url, "api_key": secret}}
        )
        assert saved["llm"]["extractor"] == "llm" and saved["llm"]["api_key_set"] is True
        assert secret not in json.dumps(saved) and secret not in json.dumps(await admin.get("/settings"))

        async def extracted_by_the_llm() -> list[str]:
            # Ingest picks the change up within about a second; each try is a new user, so that the
            # model is only ever asked to extract (a stored memory would also ask it to decide).
            async with mcp_client(system.mcp_url, new_key(system, unique("set"), app="cursor")) as cursor:
                await cursor.call("add_memories", text="I moved to Alfama.")
                return [t for t in await cursor.texts() if "Alfama district" in t]

        assert await eventually(extracted_by_the_llm, timeout=20, interval=0.5)
        assert llm.requests and llm.requests[0]["messages"]
        kept = await admin.send("PUT", "/settings", {"llm": {"model": "other-model", "api_key": None}})
        assert kept["llm"]["api_key_set"] is True and kept["llm"]["model"] == "other-model"
        await admin.send(
            "PUT", "/settings", {"llm": {"extractor": "llm", "base_url": None, "api_key": ""}}, expect=422
        )
        await admin.send("PUT", "/settings", {"llm": {"temperature": 3}}, expect=422)
        assert (await admin.get("/settings"))["llm"]["model"] == "other-model"
    assert secret not in system.log()
    await admin.http.aclose()


def start_fresh(
    system_factory: list[RunningSystem], tmp_path: Path, env: dict[str, str] | None = None
) -> RunningSystem:
    from openmemory_testing import start_system

    system = start_system(tmp_path / "data", extra_env=env)
    system_factory.append(system)
    return system
