"""The review queue end to end: a user's `review` setting (per user, per app) holds new memories or
the model's updates and deletions as pending; MCP adds say "pending review"; search serves nothing
held; the admin API lists what waits (what, which app, why, what it would change) and approves or
rejects one or many, only the caller's own; every decision is in the memory's history."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from e2e_support import mcp_client, new_key

from openmemory_testing import (
    RecordedOpenAITestServer,
    RecordedReply,
    RunningSystem,
    recorded,
    start_system,
    unique,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def owner(all_in_one: RunningSystem) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    user = unique("review")
    async with _admin(all_in_one, user) as admin:
        yield user, admin


def _admin(system: RunningSystem, user: str, scopes: str = "read,write,admin") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=system.admin_url + "/api/v1",
        headers={"Authorization": f"Bearer {new_key(system, user, scopes=scopes)}"},
        timeout=60,
    )


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


async def _found(client: Any, query: str) -> list[str]:
    return [r["id"] for r in (await client.call("search_memory", query=query))["results"]]


async def test_review_all_holds_adds_until_approved_and_records_each_decision(
    all_in_one: RunningSystem, owner: tuple[str, httpx.AsyncClient]
) -> None:
    user, admin = owner
    setting = await _ok(await admin.put("/settings/review", json={"review": "all"}))
    assert setting == {"review": "all", "apps": {}}
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, user, app="cursor")) as cursor:
        texts = ["I collect vinyl records.", "I collect old maps.", "I collect stamps."]
        held = []
        for text in texts:
            added = await cursor.call("add_memories", text=text, infer=False)
            (result,) = added["results"]
            assert result["state"] == "pending" and result["note"].startswith("pending review: all"), result
            held.append(result["id"])
        assert await _found(cursor, "what do I collect?") == []

        queue = await _ok(await admin.get("/review"))
        assert queue["total"] == 3 and {i["id"] for i in queue["items"]} == set(held)
        assert all(i["kind"] == "new" and i["app"] == "cursor" for i in queue["items"])
        assert all(i["reason"].startswith("review: all") and i["target"] is None for i in queue["items"])
        assert {i["text"] for i in queue["items"]} == set(texts)

        one = await _ok(await admin.post(f"/review/{held[0]}/approve"))
        assert one["status"] == "applied"
        bulk = await _ok(await admin.post("/review/reject", json={"ids": held[1:]}))
        assert sorted(r["id"] for r in bulk["results"]) == sorted(held[1:])
        assert await _found(cursor, "what do I collect?") == [held[0]]
        assert (await _ok(await admin.get("/review")))["total"] == 0

    approved = await _ok(await admin.get(f"/memories/{held[0]}"))
    assert approved["memory"]["state"] == "active" and "held" not in approved["memory"]["metadata"]
    assert [e["change"] for e in approved["history"]] == ["ADD", "UPDATE"]
    assert approved["history"][0]["reason"] is None
    assert approved["history"][1]["reason"].startswith("approved in review by the user")
    assert "review: all" in approved["history"][1]["reason"]
    rejected = await _ok(await admin.get(f"/memories/{held[1]}"))
    assert rejected["memory"] is None
    assert [e["change"] for e in rejected["history"]] == ["ADD", "DELETE"]
    assert rejected["history"][1]["reason"].startswith("rejected in review by the user")


async def test_an_apps_setting_wins_over_the_users(
    all_in_one: RunningSystem, owner: tuple[str, httpx.AsyncClient]
) -> None:
    user, admin = owner
    await _ok(await admin.put("/settings/review", json={"review": "off", "apps": {"cursor": "all"}}))
    async with (
        mcp_client(all_in_one.mcp_url, new_key(all_in_one, user, app="cursor")) as cursor,
        mcp_client(all_in_one.mcp_url, new_key(all_in_one, user, app="claude")) as claude,
    ):
        (by_cursor,) = (await cursor.call("add_memories", text="I row on a river.", infer=False))["results"]
        (by_claude,) = (await claude.call("add_memories", text="I row at dawn.", infer=False))["results"]
        assert by_cursor["state"] == "pending" and "state" not in by_claude
        assert await _found(claude, "rowing") == [by_claude["id"]]
        queue = await _ok(await admin.get("/review"))
        assert [(i["id"], i["app"]) for i in queue["items"]] == [(by_cursor["id"], "cursor")]


async def test_only_the_owner_sees_and_decides_and_bad_input_changes_nothing(
    all_in_one: RunningSystem, owner: tuple[str, httpx.AsyncClient]
) -> None:
    user, admin = owner
    await _ok(await admin.put("/settings/review", json={"review": "all", "apps": {"cursor": "all"}}))
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, user)) as client:
        (held,) = (await client.call("add_memories", text="I keep bees.", infer=False))["results"]
    stranger = unique("review")
    async with _admin(all_in_one, stranger) as other:
        assert (await _ok(await other.get("/review")))["items"] == []
        for path in ("/review/approve", "/review/reject"):
            refused = await other.post(path, json={"ids": [held["id"]]})
            assert refused.status_code == 404, refused.text
        assert (await other.post(f"/review/{held['id']}/approve")).status_code == 404
        assert (await _ok(await other.get("/settings/review")))["review"] == "off"  # each user's own

    # a read/write key (an app's) cannot approve what it wrote: not here, not as a resume
    async with _admin(all_in_one, user, scopes="read,write") as app_key:
        assert (await app_key.post(f"/review/{held['id']}/approve")).status_code == 403
        resume = await app_key.post("/memories/actions", json={"action": "resume", "ids": [held["id"]]})
        assert resume.status_code == 403, resume.text
        assert (await app_key.put("/settings/review", json={"review": "off"})).status_code == 403

    bad_settings: list[Any] = [
        {"review": "sometimes"},
        {"review": "all", "apps": {"bad name!": "all"}},
        {"apps": {"cursor": "never"}},
        {"apps": {f"app{i}": "all" for i in range(101)}},
        {"review": "off", "extra": 1},
        {"review": ["all"]},
    ]
    for body in bad_settings:
        refused = await admin.put("/settings/review", json=body)
        assert refused.status_code == 422, (body, refused.text)
    assert await _ok(await admin.get("/settings/review")) == {"review": "all", "apps": {"cursor": "all"}}

    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, user, app="claude")) as claude:
        await _ok(await admin.put("/settings/review", json={"review": "off", "apps": {}}))
        (active,) = (await claude.call("add_memories", text="I keep goats.", infer=False))["results"]
        assert "state" not in active
    bad_decisions: list[tuple[str, Any, int]] = [
        ("/review/approve", {"ids": [held["id"]] * 501}, 422),
        ("/review/approve", {"ids": []}, 422),
        ("/review/approve", {"ids": ["not-an-id", held["id"]]}, 422),
        ("/review/reject", {"ids": [held["id"], active["id"]]}, 422),  # one is not held: nothing happens
        ("/review/reject", {"ids": held["id"]}, 422),
        ("/review/not-an-id/approve", None, 422),
    ]
    for path, body, status in bad_decisions:
        refused = await admin.post(path, json=body)
        assert refused.status_code == status, (path, refused.text)
    queue = await _ok(await admin.get("/review"))
    assert [i["id"] for i in queue["items"]] == [held["id"]]
    detail = await _ok(await admin.get(f"/memories/{active['id']}"))
    assert detail["memory"]["state"] == "active" and [e["change"] for e in detail["history"]] == ["ADD"]


def _reply(value: dict[str, Any]) -> RecordedReply:
    return RecordedReply(json.dumps(value))


async def test_llm_changes_holds_the_models_update_and_delete(
    system_factory: list[RunningSystem], tmp_path: Path
) -> None:
    """With the LLM extractor (the recorded-response OpenAI test server stands in for the model)."""
    lisbon = {"text": "User lives in Lisbon", "entities": [{"name": "Lisbon", "kind": "place"}]}
    replies = [
        _reply({"facts": [lisbon]}),  # the first add: nothing stored yet, so no decision asked
        RecordedReply(recorded("extract_lisbon_update.json")),
        RecordedReply(recorded("decide_update_first.json")),
        _reply({"facts": [{"text": "User no longer lives in Lisbon", "entities": []}]}),
        _reply({"decisions": [{"event": "DELETE", "id": 0, "fact": 0}]}),
    ]
    async with RecordedOpenAITestServer(replies) as llm:
        env = {"OPENMEMORY_LLM_EXTRACTOR": "llm", "OPENMEMORY_LLM_BASE_URL": llm.base_url}
        system = start_system(tmp_path / "data", extra_env=env)
        system_factory.append(system)
        user = unique("review")
        async with (
            _admin(system, user) as admin,
            mcp_client(system.mcp_url, new_key(system, user, app="claude")) as claude,
        ):
            (stored,) = (await claude.call("add_memories", text="I live in Lisbon."))["results"]
            assert stored["event"] == "ADD" and "state" not in stored
            await _ok(await admin.put("/settings/review", json={"review": "llm-changes"}))

            added = await claude.call("add_memories", text="I live in the Alfama district")
            (update,) = added["results"]
            assert update["event"] == "UPDATE" and update["state"] == "pending", update
            assert update["note"].startswith("pending review: llm-changes") and stored["id"] in update["note"]
            found = (await claude.call("search_memory", query="where do I live?"))["results"]
            assert [(r["id"], r["memory"]) for r in found] == [(stored["id"], "User lives in Lisbon")]
            (item,) = (await _ok(await admin.get("/review")))["items"]
            assert (item["id"], item["kind"], item["target"]) == (update["id"], "update", stored["id"])
            assert item["target_text"] == "User lives in Lisbon" and item["text"] == update["memory"]
            assert item["app"] == "claude" and item["reason"].startswith("review: llm-changes")
            await _ok(await admin.post("/review/approve", json={"ids": [update["id"]]}))
            found = (await claude.call("search_memory", query="where do I live?"))["results"]
            assert [(r["id"], r["memory"]) for r in found] == [(stored["id"], update["memory"])]
            history = (await _ok(await admin.get(f"/memories/{stored['id']}")))["history"]
            assert [e["change"] for e in history] == ["ADD", "UPDATE"]
            assert history[1]["reason"].startswith("approved in review") and history[1]["app"] != "claude"

            (delete,) = (await claude.call("add_memories", text="I left Lisbon for good"))["results"]
            assert delete["event"] == "DELETE" and delete["state"] == "pending", delete
            (item,) = (await _ok(await admin.get("/review")))["items"]
            assert (item["kind"], item["target"], item["target_text"]) == (
                "delete",
                stored["id"],
                update["memory"],
            )
            assert await _found(claude, "where do I live?") == [stored["id"]]  # served until approved
            await _ok(await admin.post(f"/review/{delete['id']}/reject"))
            assert await _found(claude, "where do I live?") == [stored["id"]]
            assert (await _ok(await admin.get("/review")))["items"] == []
            assert len(llm.requests) == 5
