"""The write guard end to end: a secret sent through MCP, the REST edit or an import is redacted (or
refused) before it is published, so it is in neither the memory, the commands nor the events."""

from __future__ import annotations

import asyncio
import json

import httpx
import nats
import pytest
from e2e_support import ToolFailed, mcp_client, new_key, stored_events
from nats.aio.msg import Msg

from openmemory_core import contracts as c
from openmemory_core.runtime import read_endpoints
from openmemory_testing import RunningSystem, unique

pytestmark = pytest.mark.asyncio

AWS_KEY = "AKIA" + "J7Q2MZ8X" + "W4RT6YBN"
GITHUB_TOKEN = "ghp_" + "Zq81mXk2" * 4 + "Pw3a"


def _nats_url(system: RunningSystem) -> str:
    endpoints = read_endpoints(system.data_dir)
    assert endpoints is not None
    return str(endpoints["nats_url"])


async def test_an_mcp_add_stores_the_key_redacted_and_publishes_it_nowhere(all_in_one: RunningSystem) -> None:
    user = unique("guard")
    published: list[bytes] = []
    nc = await nats.connect(_nats_url(all_in_one))

    async def seen(msg: Msg) -> None:
        published.append(msg.data)

    await nc.subscribe(f"{c.COMMANDS_SUBJECT_PREFIX}.>", cb=seen)  # every command, as it is published
    await nc.flush()
    try:
        async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, user)) as client:
            added = await client.call("add_memories", text=f"Our staging AWS key is {AWS_KEY}.", infer=False)
            assert added["status"] == "done"
            assert [r["memory"] for r in added["results"]] == ["Our staging AWS key is [redacted: aws key]."]
            assert await client.texts() == ["Our staging AWS key is [redacted: aws key]."]
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    mine = [p for p in published if json.loads(p)["command"]["user_id"] == user]
    assert len(mine) == 1 and b"[redacted: aws key]" in mine[0]
    assert not any(AWS_KEY.encode() in p for p in published)
    events = (await stored_events(_nats_url(all_in_one), [user]))[user]
    assert events and all(AWS_KEY not in e.model_dump_json() for e in events)


async def test_refuse_is_a_tool_error_that_stores_nothing(all_in_one: RunningSystem) -> None:
    user = unique("guard")
    admin_key = new_key(all_in_one, user, scopes="read,write,admin")
    async with httpx.AsyncClient(
        base_url=all_in_one.admin_url + "/api/v1", headers={"Authorization": f"Bearer {admin_key}"}
    ) as admin:
        assert (await admin.get("/settings/guard")).json() == {
            "secrets": "redact",
            "email": "allow",
            "phone": "allow",
        }
        assert (await admin.put("/settings/guard", json={"secrets": "shout"})).status_code == 422
        changed = await admin.put("/settings/guard", json={"secrets": "refuse"})
        assert changed.status_code == 200 and changed.json()["secrets"] == "refuse"
    async with mcp_client(all_in_one.mcp_url, new_key(all_in_one, user)) as client:
        with pytest.raises(ToolFailed, match="aws key") as refused:
            await client.call("add_memories", text=f"key {AWS_KEY}", infer=False)
        assert AWS_KEY not in str(refused.value)
        assert await client.texts() == []
    assert (await stored_events(_nats_url(all_in_one), [user]))[user] == []


async def test_the_rest_edit_and_an_import_are_redacted_too(all_in_one: RunningSystem) -> None:
    user = unique("guard")
    key = new_key(all_in_one, user, scopes="read,write,admin")
    conversation = [{
        "uuid": "9b1d0c55-0000-4000-8000-00000000000a", "name": "Deploys",
        "created_at": "2024-04-02T08:00:00.000000Z", "updated_at": "2024-04-02T08:10:00.000000Z",
        "account": {"uuid": "acc"},
        "chat_messages": [{
            "uuid": "9b1d0c55-0000-4000-8000-0000000000a1", "sender": "human",
            "text": f"The CI token is {GITHUB_TOKEN}", "created_at": "2024-04-02T08:01:00.000000Z",
        }],
    }]  # fmt: skip
    async with httpx.AsyncClient(
        base_url=all_in_one.admin_url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as admin:
        imported = await admin.post("/import/claude", content=json.dumps(conversation).encode())
        assert imported.status_code == 200, imported.text
        (memory,) = (await admin.get("/memories")).json()["memories"]
        assert memory["text"] == "The CI token is [redacted: github token]"
        edited = await admin.patch(f"/memories/{memory['id']}", json={"text": f"New AWS key {AWS_KEY}"})
        assert edited.status_code == 200, edited.text
        (memory,) = (await admin.get("/memories")).json()["memories"]
        assert memory["text"] == "New AWS key [redacted: aws key]"
    events = (await stored_events(_nats_url(all_in_one), [user]))[user]
    assert all(AWS_KEY not in e.model_dump_json() and GITHUB_TOKEN not in e.model_dump_json() for e in events)
