"""Backup, restore and rebuild through the CLI, against running systems: afterwards, the same
search results (and the same keys, apps and states)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from e2e_support import Client, mcp_client, new_key

from openmemory_testing import RunningSystem, start_system, unique

QUERIES = ["Where does the user live?", "music", "family", "work", "food", "Berlin"]


async def answers(client: Client) -> list[list[tuple[str, str]]]:
    found = []
    for query in QUERIES:
        result = await client.call("search_memory", query=query)
        found.append([(m["id"], m["memory"]) for m in result["results"]])
    return found


async def populate(system: RunningSystem, user: str) -> tuple[str, str]:
    """Memories with history: a move (supersession), an edit, a pause and a delete."""
    key = new_key(system, user, scopes="read,write,admin")
    async with mcp_client(system.mcp_url, key) as client:
        await client.call("add_memories", text="I live in Lisbon. My sister Ana is a doctor.")
        await client.call("add_memories", text="I moved to Berlin in May 2024.")
        await client.call("add_memories", text="I play the cello and I love ramen.")
        added = await client.call("add_memories", text="I work at Acme as an engineer.")
        gone = await client.call("add_memories", text="I dislike olives.")
        await client.call("delete_memories", memory_ids=[gone["results"][0]["id"]])
    admin = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=system.admin_url + "/api/v1", headers=admin, timeout=30) as http:
        memory_id = added["results"][0]["id"]
        edit = await http.patch(f"/memories/{memory_id}", json={"text": "I work at Initech as a manager."})
        assert edit.status_code == 200
        listed = (await http.get("/memories", params={"text": "cello"})).json()["memories"]
        paused = await http.post("/memories/actions", json={"action": "pause", "ids": [listed[0]["id"]]})
        assert paused.status_code == 200
        assert (await http.patch("/apps/claude", json={"can_write": False})).status_code == 200
    return key, memory_id


async def test_rebuild_backup_and_restore_give_the_same_search_results(tmp_path: Path) -> None:
    source = start_system(tmp_path / "source")
    target: RunningSystem | None = None
    try:
        users = [unique("bk"), unique("bk")]
        keys = {user: (await populate(source, user))[0] for user in users}
        before: dict[str, Any] = {}
        for user, key in keys.items():
            async with mcp_client(source.mcp_url, key) as client:
                before[user] = await answers(client)
                assert before[user][0] and all(t != "I dislike olives." for _, t in before[user][0])

        rebuilt = source.cli("rebuild")
        assert rebuilt.returncode == 0 and "rebuilt" in rebuilt.stdout, rebuilt.stderr
        for user, key in keys.items():
            async with mcp_client(source.mcp_url, key) as client:
                assert await answers(client) == before[user]

        archive = tmp_path / "backups" / "all.zip"
        made = source.cli("backup", "--out", str(archive))
        assert made.returncode == 0 and archive.stat().st_mode & 0o777 == 0o600, made.stderr

        target = start_system(tmp_path / "target")
        broken = tmp_path / "broken.zip"
        broken.write_bytes(archive.read_bytes()[:200])
        refused = target.cli("restore", "--from", str(broken), check=False)
        assert refused.returncode == 2 and "not a readable OpenMemory backup" in refused.stderr
        restored = target.cli("restore", "--from", str(archive))
        assert restored.returncode == 0 and "rebuilt" in restored.stdout, restored.stderr
        for user, key in keys.items():  # the keys came along
            async with mcp_client(target.mcp_url, key) as client:
                assert await answers(client) == before[user]
        async with httpx.AsyncClient(timeout=30) as http:
            apps = await http.get(
                target.admin_url + "/api/v1/apps", headers={"Authorization": f"Bearer {keys[users[0]]}"}
            )
            assert {a["app"]: a["can_write"] for a in apps.json()}["claude"] is False
        again = target.cli("restore", "--from", str(archive), check=False)
        assert again.returncode == 2 and "already holds" in again.stderr
    finally:
        source.stop()
        if target is not None:
            target.stop()
