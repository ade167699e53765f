"""MCP resources, resource templates, prompts and resource-updated notifications, against a running
system with the official MCP client: what each shows, that it shows only the caller's own memories
(another user's id or entity is "not found"), what hostile input gets, and that a listen stream
tells a user about their own changes only."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from e2e_support import Client, ToolFailed, mcp_client, mcp_sse_client, new_key
from mcp.client.subscriptions import Subscription, listen
from mcp.server.subscriptions import ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent, TextResourceContents

from openmemory_testing import RunningSystem, start_system, unique

pytestmark = pytest.mark.asyncio

ABOUT_ME = (
    "My name is Dana Whitfield. I live in Lisbon. I work as a data engineer at Acme Corp. I love jazz and "
    "hiking. My sister Anna lives in Vienna. My dog is called Biscuit. I'm allergic to penicillin."
)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(tmp_path_factory.mktemp("resources") / "data")
    yield running
    running.stop()


async def read(client: Client, uri: str) -> str:
    result = await client.session.read_resource(uri)
    (content,) = result.contents
    assert isinstance(content, TextResourceContents)
    return content.text


async def read_json(client: Client, uri: str) -> Any:
    return json.loads(await read(client, uri))


async def add(client: Client, text: str) -> list[dict[str, Any]]:
    added = await client.call("add_memories", text=text)
    assert added["status"] == "done", added
    return list(added["results"])


async def test_the_client_is_shown_resources_templates_and_prompts(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        session = client.session
        resources = {str(r.uri): r for r in (await session.list_resources()).resources}
        templates = {t.uri_template: t for t in (await session.list_resource_templates()).resource_templates}
        prompts = {p.name: p for p in (await session.list_prompts()).prompts}
        # Declared honestly per protocol version: the handshake era (2025-11-25) gets no change
        # notifications; at 2026-07-28 they are served over subscriptions/listen.
        legacy = session.server_capabilities
        modern = (await session.discover()).capabilities
    assert set(resources) == {"memory://profile", "memory://recent"}
    assert resources["memory://profile"].mime_type == "text/markdown"
    assert all(r.description and r.title for r in resources.values())
    assert set(templates) == {"memory://memories/{memory_id}", "memory://graph/{entity}"}
    assert set(prompts) == {"recall_for_task", "save_conversation"}
    assert [(a.name, a.required) for a in prompts["recall_for_task"].arguments or []] == [("task", True)]
    assert [(a.name, a.required) for a in prompts["save_conversation"].arguments or []] == [("notes", False)]
    assert legacy is not None and legacy.resources is not None and legacy.prompts is not None
    assert (legacy.resources.subscribe, legacy.resources.list_changed) == (False, False)
    assert modern.resources is not None and modern.resources.subscribe is True


async def test_profile_recent_memory_and_entity_show_the_users_own_memories(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        empty = await read(client, "memory://profile")
        assert "Nothing is known about the user yet" in empty
        assert await read_json(client, "memory://recent") == {"results": []}

        added = await add(client, ABOUT_ME)
        await add(client, "I moved to Porto.")  # replaces Lisbon: the profile shows only Porto
        profile = await read(client, "memory://profile")
        for line in (
            "- Name: Dana Whitfield", "- Lives in: Porto", "- Works as: data engineer",
            "- Works at: Acme Corp", "- Likes: jazz, hiking", "- Allergic to: penicillin",
            "- Sister: Anna (lives in Vienna)", "- Pet: Biscuit",
        ):  # fmt: skip
            assert line in profile, profile
        assert "Lisbon" not in profile

        recent = (await read_json(client, "memory://recent"))["results"]
        assert recent[0]["memory"] == "User moved to Porto."
        assert {m["memory"] for m in recent} >= {r["memory"] for r in added}

        sister = next(r for r in added if "Anna" in r["memory"])
        one = await read_json(client, f"memory://memories/{sister['id']}")
        assert (
            one["memory"]["memory"] == "User's sister Anna lives in Vienna."
            and one["memory"]["id"] == sister["id"]
        )
        again = await read_json(client, f"memory://memories/{sister['id'].upper()}")  # any spelling of the id
        assert again == one

        anna = await read_json(client, "memory://graph/Anna")
        assert {(r["relation"], r["direction"], r["entity"], r["current"]) for r in anna["relations"]} == {
            ("HAS_SISTER", "in", "User", True),
            ("LIVES_IN", "out", "Vienna", True),
        }
        acme = await read_json(client, f"memory://graph/{quote('Acme Corp')}")
        assert [(r["relation"], r["entity"]) for r in acme["relations"]] == [("WORKS_AT", "User")]
        lisbon = await read_json(client, "memory://graph/lisbon")  # names match as the graph keys them
        assert [(r["relation"], r["current"]) for r in lisbon["relations"]] == [("LIVES_IN", False)]


async def test_recent_is_bounded(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        await add(client, " ".join(f"I own a lamp called lamp{n}." for n in range(25)))
        recent = (await read_json(client, "memory://recent"))["results"]
    assert len(recent) == 20


async def test_another_user_gets_not_found_never_data(system: RunningSystem) -> None:
    alice, bob = unique(), unique()
    async with (
        mcp_client(system.mcp_url, new_key(system, alice)) as alices,
        mcp_client(system.mcp_url, new_key(system, bob)) as bobs,
    ):
        added = await add(alices, "My sister Anna lives in Vienna. I work at Initech.")
        await add(bobs, "I like tea.")
        secret = added[0]["id"]
        assert (await read_json(alices, f"memory://memories/{secret}"))["memory"]["id"] == secret
        with pytest.raises(MCPError, match=f"no such memory: {secret}"):
            await read(bobs, f"memory://memories/{secret}")
        for entity in ("Anna", "Vienna", "Initech"):
            with pytest.raises(MCPError, match=r"no entity .* in this user's graph"):
                await read(bobs, f"memory://graph/{entity}")
        profile = await read(bobs, "memory://profile")
        assert "Likes: tea" in profile and "Anna" not in profile and "Initech" not in profile
        assert [m["memory"] for m in (await read_json(bobs, "memory://recent"))["results"]] == [
            "User likes tea."
        ]


@contextlib.asynccontextmanager
async def _admin(system: RunningSystem, user: str) -> AsyncIterator[httpx.AsyncClient]:
    key = new_key(system, user, scopes="read,write,admin")
    async with httpx.AsyncClient(
        base_url=system.admin_url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as http:
        yield http


async def test_an_app_bound_key_reads_what_its_tools_may_read(system: RunningSystem) -> None:
    user = unique()
    async with (
        _admin(system, user) as admin,
        mcp_client(system.mcp_url, new_key(system, user, app="cursor")) as cursor,
        mcp_client(system.mcp_url, new_key(system, user, app="claude")) as claude,
    ):
        added = await add(claude, "My sister Anna lives in Vienna.")
        uris = (
            "memory://profile",
            "memory://recent",
            f"memory://memories/{added[0]['id']}",
            "memory://graph/Anna",
        )
        for uri in uris:  # an app sees the memories of every app of its user, as its tools do
            assert "Anna" in await read(cursor, uri), uri
        for change, refusal in (({"can_read": False}, "no read permission"), ({"paused": True}, "paused")):
            answer = await admin.patch("/apps/cursor", json=change)
            assert answer.status_code == 200, answer.text
            for uri in uris:
                with pytest.raises(MCPError, match=refusal):
                    await read(cursor, uri)
            with pytest.raises(ToolFailed, match=refusal):  # as its tools are refused
                await cursor.call("search_memory", query="Anna")
            assert "Anna" in await read(claude, "memory://profile")  # other apps are not affected
            answer = await admin.patch("/apps/cursor", json={"can_read": True, "paused": False})
            assert answer.status_code == 200, answer.text


async def test_hostile_ids_and_names_get_a_clear_error(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        await add(client, "My sister Anna lives in Vienna.")
        refused = {
            "memory://memories/" + "a" * 10_000: "not a memory id",
            "memory://memories/not-an-id": "not a memory id: 'not-an-id'",
            "memory://memories/%00": "not a memory id",
            "memory://memories/..%2F..%2Fetc%2Fpasswd": "not a memory id",
            "memory://graph/Anna%07": "control characters",
            "memory://graph/Anna%E2%80%AE": "control characters",  # right-to-left override
            "memory://graph/" + "x" * 500: "longer than 200 characters",
            "memory://graph/%20%20": "the entity name is empty",
            "memory://graph/..%2F..%2Fetc%2Fpasswd": "is a path, not an entity name",
            "memory://graph/%2Fetc%2Fpasswd": "is a path, not an entity name",
            "memory://memories/a/b": "Unknown resource",
            "memory://elsewhere": "Unknown resource",
        }
        for uri, message in refused.items():
            with pytest.raises(MCPError, match=message):
                await read(client, uri)
        error = None
        try:
            await read(client, "memory://memories/" + "a" * 10_000)
        except MCPError as exc:
            error = str(exc)
        assert error is not None and len(error) < 300  # the value is not echoed back whole
        assert "Anna" in await read(client, "memory://graph/Anna")  # and the server still answers


def _text(result: Any) -> str:
    (message,) = result.messages
    assert message.role == "user" and isinstance(message.content, TextContent)
    return str(message.content.text)


async def test_prompts_tell_the_model_which_tools_to_call(system: RunningSystem) -> None:
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        session = client.session
        recall = _text(await session.get_prompt("recall_for_task", {"task": "Plan my trip to Japan"}))
        assert "search_memory" in recall and "<task>\nPlan my trip to Japan\n</task>" in recall
        assert "memory://profile" in recall and "add_memories" not in recall
        save = _text(await session.get_prompt("save_conversation", {}))
        assert "add_memories" in save and "search_memory" in save and "<notes>" not in save
        noted = _text(await session.get_prompt("save_conversation", {"notes": "I switched to Neovim"}))
        assert "<notes>\nI switched to Neovim\n</notes>" in noted
        with pytest.raises(MCPError, match="task"):
            await session.get_prompt("recall_for_task", {})
        with pytest.raises(MCPError, match="task is empty"):
            await session.get_prompt("recall_for_task", {"task": "   "})
        with pytest.raises(MCPError, match="the limit is 4000"):
            await session.get_prompt("recall_for_task", {"task": "x" * 5000})


@contextlib.asynccontextmanager
async def _modern(*clients: Client) -> AsyncIterator[None]:
    """Move the sessions to protocol 2026-07-28 (`server/discover`), where listen streams exist."""
    for client in clients:
        await client.session.discover()
    yield


async def _next(subscription: Subscription, timeout: float) -> ServerEvent | None:
    try:
        return await asyncio.wait_for(subscription.__anext__(), timeout)
    except TimeoutError:
        return None


async def _updates_until(subscription: Subscription, uri: str, timeout: float = 15) -> list[str]:
    seen: list[str] = []
    while (event := await _next(subscription, timeout)) is not None:
        assert isinstance(event, ResourceUpdated)
        seen.append(event.uri)
        if event.uri == uri:
            return seen
    raise AssertionError(f"no update of {uri} within {timeout}s; saw {seen}")


async def test_a_listen_stream_tells_of_the_callers_own_changes_only(system: RunningSystem) -> None:
    alice, bob = unique(), unique()
    watched = ("memory://recent", "memory://profile", "memory://graph/Anna")
    async with (
        mcp_client(system.mcp_url, new_key(system, alice)) as alices,
        mcp_client(system.mcp_url, new_key(system, bob)) as bobs,
        _modern(alices, bobs),
        listen(alices.session, resource_subscriptions=watched) as alice_hears,
        listen(bobs.session, resource_subscriptions=watched) as bob_hears,
    ):
        assert set(alice_hears.honored.resource_subscriptions or ()) == set(watched)
        added = await add(alices, "My sister Anna lives in Vienna.")
        seen = await _updates_until(alice_hears, "memory://graph/Anna")
        assert {"memory://recent", "memory://profile"} <= set(seen)
        assert await _next(bob_hears, 2) is None  # Alice's change is not Bob's news

        await add(bobs, "I like tea.")
        assert "memory://recent" in await _updates_until(bob_hears, "memory://profile")

        one = f"memory://memories/{added[0]['id']}"
        async with listen(alices.session, resource_subscriptions=[one]) as on_one:
            await alices.call("delete_memories", memory_ids=[added[0]["id"]])
            assert await _updates_until(on_one, one) == [one]  # only what this stream asked for


async def test_listening_needs_read_access(system: RunningSystem) -> None:
    user = unique()
    async with (
        _admin(system, user) as admin,
        mcp_client(system.mcp_url, new_key(system, user, app="cursor")) as cursor,
        _modern(cursor),
    ):
        answer = await admin.patch("/apps/cursor", json={"paused": True})
        assert answer.status_code == 200, answer.text
        with pytest.raises(MCPError, match="paused"):
            async with listen(cursor.session, resource_subscriptions=["memory://recent"]):
                pass


async def test_resources_over_legacy_sse_are_scoped_too(system: RunningSystem) -> None:
    user = unique()
    key = new_key(system, user)
    async with mcp_client(system.mcp_url, key) as client:
        await add(client, "I live in Oslo.")
    async with mcp_sse_client(f"{system.gateway_url}/sse", key) as legacy:
        assert "- Lives in: Oslo" in await read(legacy, "memory://profile")
    async with mcp_sse_client(f"{system.gateway_url}/sse", new_key(system, unique())) as other:
        assert "Oslo" not in await read(other, "memory://profile")
