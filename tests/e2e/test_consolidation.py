"""Consolidation end to end on `openmemory run`: `openmemory consolidate` (dry run, then for real)
against the running system, merged memories' history over MCP and the CLI, a temporary memory set
over MCP, the note search gives a plan whose date has passed, and `POST /api/v1/consolidate` (the
caller's own user; an operator names another)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from e2e_support import mcp_client, new_key

from openmemory_core import contracts as c
from openmemory_testing import RunningSystem, openmemory_command, unique


def openmemory(system: RunningSystem, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**system.env, **({"OPENMEMORY_API_KEY": key} if key else {})}
    return subprocess.run(
        [openmemory_command(), *args, "--data-dir", str(system.data_dir)],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip


def consolidate(system: RunningSystem, *args: str) -> subprocess.CompletedProcess[str]:
    return openmemory(system, "consolidate", *args)


async def test_the_cli_consolidates_a_running_system(all_in_one: RunningSystem) -> None:
    user, other = unique("cons"), unique("cons")
    async with (
        mcp_client(all_in_one.mcp_url, new_key(all_in_one, user)) as client,
        mcp_client(all_in_one.mcp_url, new_key(all_in_one, other)) as others,
    ):
        ids = {}
        for text in ("I have two cats", "I've got two cats", "I like tea", "I don't like tea"):
            ids[text] = (await client.call("add_memories", text=text))["results"][0]["id"]
        expired = (c.now() - timedelta(minutes=5)).isoformat()
        gone = await client.call("add_memories", text="The wifi password hint is blue", infer=False,
                                 expires_at=expired)  # fmt: skip
        (gone_id,) = [r["id"] for r in gone["results"]]
        await others.call("add_memories", text="I've got two cats")

        planned = await asyncio.to_thread(consolidate, all_in_one, "--user", user, "--dry-run", "--json")
        assert planned.returncode == 0, planned.stderr
        plan = json.loads(planned.stdout)
        assert plan["dry_run"] and plan["applied"] == []
        (merge,) = plan["merges"]
        assert sorted([merge["keep"], *merge["merged"]]) == sorted(
            [ids["I have two cats"], ids["I've got two cats"]]
        )
        assert [e["memory_id"] for e in plan["expiries"]] == [gone_id]
        assert len(await client.texts()) == 5  # nothing changed

        done = await asyncio.to_thread(consolidate, all_in_one, "--user", user)
        assert done.returncode == 0, done.stderr
        assert "1 merges (1 memories folded), 1 expired" in done.stdout
        assert "3 memories changed" in done.stdout
        left = await client.texts()
        assert sorted(left) == sorted(["User likes tea", "User doesn't like tea", merge["keep_text"]])
        assert await others.texts() == ["User has got two cats"]  # another user's copy stays

        (folded,) = merge["merged"]
        history = await client.call("get_memory", memory_id=folded)
        assert history["memory"]["state"] == "archived"
        last = history["history"][-1]
        assert last["event"] == "UPDATE" and last["state"] == "archived"
        assert last["reason"] == f"merged into {merge['keep']}" and last["app"] == "consolidation"

        key = new_key(all_in_one, user)
        shown = await asyncio.to_thread(openmemory, all_in_one, "get", folded, key=key)
        assert shown.returncode == 0 and f"[archived: merged into {merge['keep']}]" in shown.stdout


async def test_a_past_plan_has_a_note_in_search_results(all_in_one: RunningSystem) -> None:
    user = unique("plans")
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, user)) as client:
        await client.call("add_memories", text="I'm planning a trip to Rome on 5 March 2020")
        await client.call("add_memories", text="I'm planning a trip to Oslo on 5 March 2099")
        found = (await client.call("search_memory", query="planned trips"))["results"]
        notes = {r["memory"]: r.get("note") for r in found}
        assert notes["User is planning a trip to Rome on 5 March 2020"].startswith(
            "this plan's date (2020-03-05) has passed"
        )
        assert notes["User is planning a trip to Oslo on 5 March 2099"] is None
        snippets = (await client.call("search_memory", query="trip to Rome", fields="snippet"))["results"]
        assert snippets[0]["note"].startswith("this plan's date")  # kept whatever fields are asked for


def test_bad_arguments_get_a_clear_error(all_in_one: RunningSystem) -> None:
    missing = consolidate(all_in_one)
    assert missing.returncode == 2 and "--user" in missing.stderr
    too_long = consolidate(all_in_one, "--user", "u" * 300)
    assert too_long.returncode == 2 and "user_id" in too_long.stderr
    system_user = consolidate(all_in_one, "--user", c.SYSTEM_USER)
    assert system_user.returncode == 2 and "is not a user" in system_user.stderr


def test_without_a_running_ingest_it_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        [openmemory_command(), "consolidate", "--user", "u", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "no ingest is running" in done.stderr, done.stderr


async def _post(http: httpx.AsyncClient, key: str, body: object, expect: int) -> dict[str, Any]:
    response = await http.post("/api/v1/consolidate", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == expect, response.text
    return dict(response.json())


async def test_the_rest_route_plans_and_applies_for_the_callers_own_user_only(
    all_in_one: RunningSystem,
) -> None:
    user, other, operator = unique("cons"), unique("cons"), unique("cons")
    admin_key = new_key(all_in_one, user, scopes="read,write,admin")
    others_admin = new_key(all_in_one, other, scopes="read,write,admin")
    operator_key = new_key(all_in_one, operator, scopes="read,write,admin,operator")
    async with (
        mcp_client(all_in_one.mcp_url, new_key(all_in_one, user)) as client,
        mcp_client(all_in_one.mcp_url, new_key(all_in_one, other)) as others,
        httpx.AsyncClient(base_url=all_in_one.admin_url, timeout=300) as http,
    ):
        ids = {}
        for text in (
            "I speak Spanish",
            "I can speak Spanish",
            "I bought a white kettle",
            "I bought a blue kettle",
        ):
            ids[text] = (await client.call("add_memories", text=text))["results"][0]["id"]
        expired = (c.now() - timedelta(minutes=5)).isoformat()
        gone = await client.call(
            "add_memories", text="The gate code is 1234", infer=False, expires_at=expired
        )
        (gone_id,) = [r["id"] for r in gone["results"]]
        for text in ("I speak Spanish", "I can speak Spanish"):
            await others.call("add_memories", text=text)
        others_before = sorted(await others.texts())

        # bad input: a clear error, nothing changed
        for body in ({"dry_run": "maybe"}, {"dryrun": False}, {"user_id": "u" * 300}, [1, 2]):
            await _post(http, admin_key, body, 422)
        assert (await http.post("/api/v1/consolidate", json={})).status_code == 401  # no key
        await _post(http, new_key(all_in_one, user), {}, 403)  # a read/write key: no admin scope
        await _post(
            http, admin_key, {"user_id": other, "dry_run": False}, 403
        )  # only an operator names a user
        refused = await _post(http, operator_key, {"user_id": c.SYSTEM_USER}, 422)
        assert "is not a user" in refused["detail"]
        assert len(await client.texts()) == 5 and sorted(await others.texts()) == others_before

        planned = await _post(http, admin_key, {}, 200)  # a dry run is the default
        assert planned["dry_run"] and planned["user_id"] == user and planned["applied"] == []
        (merge,) = planned["merges"]
        spanish = sorted([ids["I speak Spanish"], ids["I can speak Spanish"]])
        assert sorted([merge["keep"], *merge["merged"]]) == spanish  # the kettles stay apart
        assert [e["memory_id"] for e in planned["expiries"]] == [gone_id]
        assert len(await client.texts()) == 5

        only_expiry = await _post(http, admin_key, {"merge": False}, 200)
        assert only_expiry["merges"] == [] and only_expiry["merge"] is False
        assert [e["memory_id"] for e in only_expiry["expiries"]] == [gone_id]

        done = await _post(http, admin_key, {"dry_run": False}, 200)
        assert not done["dry_run"] and not done["pending"]
        changed = {s["id"]: s for s in done["applied"]}
        assert set(changed) == {*spanish, gone_id}
        assert all(s["event"] == "UPDATE" and s["note"] for s in changed.values())
        left = await client.texts()
        assert len(left) == 3 and "User bought a white kettle" in left and "User bought a blue kettle" in left
        assert sorted(await others.texts()) == others_before  # another user's copy is untouched

        # an operator may consolidate another user, named in the body
        theirs = await _post(http, operator_key, {"user_id": other}, 200)
        assert theirs["user_id"] == other and len(theirs["merges"]) == 1
        assert sorted(await others.texts()) == others_before  # a dry run
        mine = await _post(http, others_admin, {"dry_run": False}, 200)
        assert len(mine["applied"]) == 2 and len(await others.texts()) == 1
        assert len(await client.texts()) == 3
