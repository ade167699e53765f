"""Long writes: an add that answers "accepted" can be followed to its end, by the `get_request`
tool or, for a client that declares the MCP tasks extension, as a task polled with `tasks/get`.
The gateway's wait is 0 s here, so every add answers "accepted" and the follow-up path always runs."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import httpx2
import pytest
from e2e_support import Client, ToolFailed, mcp_client, new_key
from mcp import ClientSession
from mcp.client.extension import ClaimContext, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import ConfigDict, Field, TypeAdapter

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.runtime import read_endpoints
from openmemory_testing import RunningSystem, eventually, start_system, unique

pytestmark = pytest.mark.asyncio

TASKS = "io.modelcontextprotocol/tasks"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(
        tmp_path_factory.mktemp("long") / "data", extra_env={"OPENMEMORY_GATEWAY_ADD_WAIT_SECONDS": "0"}
    )
    yield running
    running.stop()


async def _ended(client: Client, request_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status = await client.call("get_request", request_id=request_id)
        return status if status["status"] != "pending" else None

    found: dict[str, Any] = await eventually(check, timeout=30)  # type: ignore[assignment]
    return found


async def test_an_accepted_add_is_followed_to_its_end_by_its_user_only(system: RunningSystem) -> None:
    user = unique()
    async with (
        mcp_client(system.mcp_url, new_key(system, user)) as client,
        mcp_client(system.mcp_url, new_key(system, unique())) as stranger,
    ):
        added = await client.call("add_memories", text="I keep bees on the roof of my flat.", infer=False)
        assert added["status"] == "accepted"
        ended = await _ended(client, added["request_id"])
        assert ended["status"] == "applied" and ended["kind"] == "add"
        assert [r["memory"] for r in ended["results"]] == ["I keep bees on the roof of my flat."]
        assert ended["results"][0]["event"] == "ADD"
        # Another user's key learns nothing about it, not even that it exists.
        with pytest.raises(ToolFailed, match="no such request"):
            await stranger.call("get_request", request_id=added["request_id"])
        for hostile in ("../om_api_keys", "a.b", "*", "x" * 129):
            with pytest.raises(ToolFailed):
                await client.call("get_request", request_id=hostile)
        with pytest.raises(ToolFailed, match="no such request"):
            await client.call("get_request", request_id=c.new_request_id())


async def test_a_parked_command_reads_as_failed_with_its_reason(system: RunningSystem) -> None:
    user = unique()
    endpoints = read_endpoints(system.data_dir)
    assert endpoints is not None
    bus = await Bus.connect(str(endpoints["nats_url"]), "test", c.DEFAULT_PARTITIONS)
    try:  # an edit of a memory that does not exist cannot succeed: ingest parks it
        poison = c.EditCommand(user_id=user, app="test", memory_id=c.memory_id_for("none", 0), text="x")
        assert await bus.submit(poison, 0) is None
    finally:
        await bus.close()
    async with mcp_client(system.mcp_url, new_key(system, user)) as client:
        ended = await _ended(client, poison.request_id)
    assert ended["status"] == "failed" and "no such memory" in ended["error"]


class TaskHandle(Result):
    """What a server answers instead of a tool result when it makes a task (SEP-2663)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")


class GetTask(Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskParams


class CancelTask(Request[TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskParams


ANY = TypeAdapter(dict[str, Any])


class Tasks:
    """A minimal requester side of the tasks extension, on the SDK's own hooks: the claim for
    `resultType: "task"` polls `tasks/get` until the task ends, and hands back its tool result."""

    def __init__(self) -> None:
        self.handles: list[TaskHandle] = []
        self.polls: list[dict[str, Any]] = []

    async def resolve(self, handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
        import anyio

        self.handles.append(handle)
        for _ in range(300):
            task = await ctx.session.send_request(GetTask(params=TaskParams(taskId=handle.task_id)), ANY)
            self.polls.append(task)
            if task["status"] == "completed":
                return CallToolResult.model_validate(task["result"])
            if task["status"] != "working":
                raise AssertionError(f"task ended {task['status']}: {task}")
            await anyio.sleep((handle.poll_interval_ms or 1000) / 1000 / 10)
        raise AssertionError("the task never ended")


@contextlib.asynccontextmanager
async def tasks_client(url: str, key: str, tasks: Tasks) -> AsyncIterator[ClientSession]:
    claim = ResultClaim(result_type="task", model=TaskHandle, resolve=tasks.resolve)
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write, extensions={TASKS: {}}, result_claims={TASKS: [claim]}) as session,
    ):
        await session.discover()  # 2026-07-28, stateless: extensions are declared per request
        yield session


async def test_a_client_with_the_tasks_extension_polls_its_add_to_completion(system: RunningSystem) -> None:
    user, tasks = unique(), Tasks()
    key = new_key(system, user)
    async with tasks_client(system.mcp_url, key, tasks) as session:
        # `Client(extensions=[...])` resolves a claimed result by itself; on the session, the caller
        # opts in (`allow_claimed`) and resolves it the same way, through the claim's `resolve`.
        text = {"text": "My sister Ana lives in Braga.", "infer": False}
        claimed = await session.call_tool("add_memories", text, allow_claimed=True)
        assert isinstance(claimed, TaskHandle), claimed
        result = await tasks.resolve(
            claimed, ClaimContext(session=session, tool_name="add_memories", read_timeout_seconds=None)
        )
        assert not result.is_error
        answer = result.structured_content or json.loads(result.content[0].text)  # type: ignore[union-attr]
        (handle,) = tasks.handles
        assert handle.status == "working" and handle.task_id == answer["request_id"]
        assert answer["status"] == "done"
        assert [r["memory"] for r in answer["results"]] == ["My sister Ana lives in Braga."]
        last = tasks.polls[-1]
        assert last["status"] == "completed" and last["resultType"] == "complete"
        assert last["ttlMs"] > 0 and last["createdAt"].endswith("Z")
        with pytest.raises(MCPError, match="cannot be cancelled"):
            await session.send_request(CancelTask(params=TaskParams(taskId=handle.task_id)), ANY)
    # Another user's session cannot read the task.
    async with tasks_client(system.mcp_url, new_key(system, unique()), Tasks()) as other:
        with pytest.raises(MCPError, match="no such request"):
            await other.send_request(GetTask(params=TaskParams(taskId=handle.task_id)), ANY)
    # A client that does not declare the extension keeps the plain "accepted" answer.
    async with mcp_client(system.mcp_url, key) as plain:
        added = await plain.call("add_memories", text="I play the cello.", infer=False)
        assert added["status"] == "accepted"
