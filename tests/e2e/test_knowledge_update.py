"""Memory that stays true on the default (offline) path: a statement that changes an earlier fact
supersedes exactly that fact, through MCP, and search answers with the current one first."""

from __future__ import annotations

from e2e_support import mcp_client, new_key

from openmemory_testing import RunningSystem, unique


async def test_a_move_updates_the_home_and_leaves_the_job(all_in_one: RunningSystem) -> None:
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, unique("move"))) as client:
        first = await client.call("add_memories", text="I live in Lisbon and work at Acme.")
        stored = {r["memory"]: r["id"] for r in first["results"]}
        assert sorted(stored) == ["User lives in Lisbon.", "User works at Acme."], first
        moved = await client.call("add_memories", text="I moved to Porto.")
        updated = [r for r in moved["results"] if r["event"] == "UPDATE"]
        assert [r["id"] for r in updated] == [stored["User lives in Lisbon."]], moved
        home = await client.call("get_memory", memory_id=stored["User lives in Lisbon."])
        job = await client.call("get_memory", memory_id=stored["User works at Acme."])
        assert [e["event"] for e in home["history"]] == ["ADD", "UPDATE"]
        assert [e["event"] for e in job["history"]] == ["ADD"]
        found = await client.texts("where do I live?")
        assert found[0] == "User moved to Porto.", found
        assert "User lives in Lisbon." in found  # superseded, still findable


async def test_a_new_diet_supersedes_the_old_one(all_in_one: RunningSystem) -> None:
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, unique("diet"))) as client:
        first = await client.call("add_memories", text="I'm vegetarian.")
        (old,) = [r["id"] for r in first["results"]]
        changed = await client.call("add_memories", text="I went vegan last month.")
        assert [r["id"] for r in changed["results"] if r["event"] == "UPDATE"] == [old], changed
        assert (await client.texts("what do I eat?"))[0].startswith("User went vegan")


async def test_a_change_without_a_relation_supersedes_the_memory_it_names(all_in_one: RunningSystem) -> None:
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, unique("editor"))) as client:
        first = await client.call("add_memories", text="I write all my code in Sublime Text.")
        (old,) = [r["id"] for r in first["results"]]
        await client.call("add_memories", text="I play guitar in a pub band.")
        changed = await client.call("add_memories", text="After years I moved over from Sublime to Zed.")
        assert [r["id"] for r in changed["results"] if r["event"] == "UPDATE"] == [old], changed
        (new,) = [r["id"] for r in changed["results"] if r["event"] == "ADD"]
        # the query's words find the old memory; its replacement ranks above it all the same
        found = await client.texts("what do I write my code in?")
        newer = found.index("After years User moved over from Sublime to Zed.")
        assert newer < found.index("User writes all User's code in Sublime Text."), found
        # deleting the new memory makes the old one current again
        await client.call("delete_memories", memory_ids=[new])
        restored = await client.call("get_memory", memory_id=old)
        assert restored["memory"]["superseded_by"] is None, restored
        assert "User writes all User's code in Sublime Text." in await client.texts(
            "what do I write code in?"
        )


async def test_a_fact_that_adds_supersedes_nothing(all_in_one: RunningSystem) -> None:
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, unique("adds"))) as client:
        await client.call("add_memories", text="I play guitar in a pub band.")
        added = await client.call("add_memories", text="I now also play bass in a second band.")
        assert [r["event"] for r in added["results"]] == ["ADD"], added
        stopped = await client.call("add_memories", text="I don't play guitar any more.")
        assert [r["event"] for r in stopped["results"]].count("UPDATE") == 1, stopped
