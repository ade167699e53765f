"""Long writes as MCP tasks: the `io.modelcontextprotocol/tasks` extension (SEP-2663, 2026-07-28).

An add (or delete) that ingest has not applied within the gateway's wait answers "accepted" with a
request id. A client that declares the tasks extension in its request's capabilities gets a task
handle instead (`resultType: "task"`, the request id as `taskId`) and polls `tasks/get` until the
task is `completed` (its `result` is the tool result the call would have had) or `failed` (the
command was parked in the dead letters; `error` says why). Other clients keep the request id and
ask the `get_request` tool. Both read the same record (`openmemory_core.requests`), kept a day.

A task cannot be cancelled: the command is already stored durably and will be applied; delete the
memories it adds afterwards instead. `tasks/update` is not served (no task waits for input).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CallToolRequestParams, CallToolResult, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from openmemory_core import contracts as c
from openmemory_core.errors import OpenMemoryError
from openmemory_gateway.service import MemoryGateway, authenticated

TASKS = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS = 1000
TTL_MS = c.REQUEST_RECORD_TTL_SECONDS * 1000
#: The tools whose "accepted" answer becomes a task.
WRITES = frozenset({"add_memories", "delete_memories", "delete_all_memories"})
INVALID_PARAMS = -32602
NOT_CANCELLABLE = (
    "a task cannot be cancelled: the command is stored durably and will be applied; "
    "delete the memories it added afterwards instead"
)


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId", max_length=128)


def request_view(request_id: str, record: c.RequestRecord) -> dict[str, Any]:
    """What `get_request` answers: the standing of the request, and its changes once applied."""
    view: dict[str, Any] = {
        "request_id": request_id,
        "kind": record.kind,
        "status": record.status,
        "at": record.at.isoformat(),
    }
    if record.result is not None and record.result.ok:
        view["results"] = [r.model_dump(mode="json") for r in record.result.results]
        if record.result.note:
            view["note"] = record.result.note
    elif record.result is not None:
        view["error"] = record.result.error
    return view


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _task(task_id: str, status: str, at: datetime, message: str) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "status": status,
        "statusMessage": message,
        "createdAt": _stamp(at),
        "lastUpdatedAt": _stamp(at),
        "ttlMs": TTL_MS,
        "pollIntervalMs": POLL_INTERVAL_MS,
    }


def _tool_result(answer: dict[str, Any]) -> dict[str, Any]:
    result = CallToolResult(
        content=[{"type": "text", "text": json.dumps(answer)}],  # type: ignore[list-item]
        structured_content=answer,
    )
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def _principal(ctx: ServerRequestContext[Any, Any]) -> c.Principal:
    principal = authenticated(ctx.request)
    if principal is None:
        raise MCPError(code=INVALID_PARAMS, message="not authenticated: connect with an OpenMemory API key")
    return principal


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's client declared the extension. Only 2026-07-28 requests can: they
    carry their capabilities in `_meta`; a task handle cannot be delivered on an older wire."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = (ctx.meta or {}).get(CLIENT_CAPABILITIES_META_KEY)
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return isinstance(extensions, dict) and TASKS in extensions


class LongWrites(Extension):
    identifier = TASKS

    def __init__(self, gateway: MemoryGateway) -> None:
        self.gateway = gateway

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding(method="tasks/get", params_type=TaskParams, handler=self._get),
            MethodBinding(method="tasks/cancel", params_type=TaskParams, handler=self._cancel),
        ]

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        try:
            record = await self.gateway.request_status(_principal(ctx), params.task_id)
        except OpenMemoryError as exc:
            raise MCPError(code=INVALID_PARAMS, message=exc.message) from exc
        if record.status == "pending":
            task = _task(params.task_id, "working", record.at, "accepted; ingest has not applied it yet")
        elif record.status == "applied":
            task = _task(params.task_id, "completed", record.at, "applied")
            done: dict[str, Any] = {"status": "done", "request_id": params.task_id}
            done["results"] = request_view(params.task_id, record).get("results", [])
            task["result"] = _tool_result(done)
        else:
            error = record.result.error if record.result else None
            task = _task(params.task_id, "failed", record.at, error or "failed")
            task["error"] = {"code": INVALID_PARAMS, "message": error or "the command failed"}
        return {"resultType": "complete", **task}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        try:
            await self.gateway.request_status(_principal(ctx), params.task_id)  # unknown ids say so
        except OpenMemoryError as exc:
            raise MCPError(code=INVALID_PARAMS, message=exc.message) from exc
        raise MCPError(code=INVALID_PARAMS, message=NOT_CANCELLABLE)

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if params.name not in WRITES or not _declared(ctx) or not isinstance(result, CallToolResult):
            return result
        answer = result.structured_content
        if result.is_error or not isinstance(answer, dict) or answer.get("status") != "accepted":
            return result
        record = await self.gateway.request_status(_principal(ctx), str(answer["request_id"]))
        handle = _task(str(answer["request_id"]), "working", record.at, str(answer.get("message", "")))
        return {"resultType": "task", **handle}
