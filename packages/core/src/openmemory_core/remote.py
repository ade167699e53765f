"""The CLI's memory commands, against a running system with an API key.

They speak MCP to the gateway (the official SDK client, streamable HTTP, the key as a bearer
token), as any MCP client does, and the admin REST API only where MCP has no equivalent (export,
and imports of assistants' exports). Never the bus: they work against a remote system too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from openmemory_core.runtime import read_endpoints

if TYPE_CHECKING:
    from mcp import ClientSession

ENV_KEY = "OPENMEMORY_API_KEY"
DEFAULT_GATEWAY = "http://127.0.0.1:8765"
DEFAULT_ADMIN = "http://127.0.0.1:8766"
#: The largest export file an import sends (the admin API refuses larger uploads too).
MAX_IMPORT_FILE_BYTES = 64 * 1024 * 1024

OK, FAILED, USAGE, NOT_FOUND, AUTH, UNAVAILABLE = 0, 1, 2, 3, 4, 5
EXIT_CODES = """exit codes:
  0  done
  1  failed for another reason (the message says why)
  2  bad usage or input (an argument, a file, a malformed id)
  3  not found (no such memory)
  4  authentication refused (no key, a wrong, revoked or expired key, or a missing scope)
  5  unavailable or rate-limited (the system cannot be reached, is busy, or asks to slow down)"""


class Failed(Exception):
    """A command that did not do what was asked: the message for the person, the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _status_code(status: int) -> int:
    if status in (401, 403):
        return AUTH
    if status == 404:
        return NOT_FOUND
    if status in (429, 502, 503, 504):
        return UNAVAILABLE
    return USAGE if 400 <= status < 500 else FAILED


def _tool_error_code(message: str) -> int:
    """What a tool error means, from its message (MCP carries no status)."""
    text = message.casefold()
    if "no such memor" in text:
        return NOT_FOUND
    if "scope" in text or "is paused" in text or "permission" in text or "not authenticated" in text:
        return AUTH
    if "catching up" in text or "too many requests" in text or "unavailable" in text:
        return UNAVAILABLE
    if "set aside" in text:
        return FAILED
    return USAGE


@dataclass(frozen=True)
class Target:
    """Where the running system is and the key to show it."""

    mcp_url: str
    admin_url: str
    key: str


def target(args: argparse.Namespace, data_dir: Path) -> Target:
    """The key (--key, else OPENMEMORY_API_KEY) and the URLs (flags, else the system running on the
    data dir, else the default ports on this machine)."""
    import os

    key = args.key or os.environ.get(ENV_KEY, "")
    if not key.strip():
        raise Failed(f"no API key: pass --key or set {ENV_KEY}", AUTH)
    running = read_endpoints(data_dir) or {}
    http = running.get("http", {}) if isinstance(running.get("http"), dict) else {}
    gateway = (args.url or http.get("gateway") or DEFAULT_GATEWAY).rstrip("/")
    mcp_url = gateway if gateway.endswith(("/mcp", "/sse")) or "/mcp/" in gateway else gateway + "/mcp"
    admin = (args.admin_url or http.get("admin") or DEFAULT_ADMIN).rstrip("/")
    return Target(mcp_url, admin, key.strip())


# ---- MCP -------------------------------------------------------------------------------------------


class Memories:
    """One MCP session with the gateway; each call returns the tool's decoded result."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.session.call_tool(tool, arguments)
        text = " ".join(getattr(part, "text", "") for part in result.content)
        if result.is_error:
            raise Failed(text or f"{tool} failed", _tool_error_code(text))
        if result.structured_content is not None:
            return dict(result.structured_content)
        return dict(json.loads(text))


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


@contextlib.asynccontextmanager
async def memories(where: Target) -> AsyncIterator[Memories]:
    """An initialised MCP session; a refused key, a rate limit or an unreachable server as `Failed`."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    refused: list[tuple[int, str]] = []

    async def watch(response: httpx2.Response) -> None:
        # The SDK reports any HTTP error as one JSON-RPC error: keep the status and the reason.
        if response.status_code >= 400 and not refused:
            await response.aread()
            try:
                reason = str(response.json().get("error") or response.json().get("detail"))
            except ValueError:
                reason = response.text[:200]
            refused.append((response.status_code, reason))

    headers = {"Authorization": f"Bearer {where.key}"}
    try:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60, event_hooks={"response": [watch]}) as http,
            streamable_http_client(where.mcp_url, http_client=http) as (read, write, *_),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield Memories(session)
    except Failed:
        raise
    except Exception as exc:
        if refused:
            status, reason = refused[0]
            raise Failed(f"{where.mcp_url} answered {status}: {reason}", _status_code(status)) from exc
        leaves = _leaves(exc)
        if len(leaves) == 1 and isinstance(leaves[0], Failed):
            raise leaves[0] from None
        pipe = next((leaf for leaf in leaves if isinstance(leaf, BrokenPipeError)), None)
        if pipe is not None:  # the reader went away (`| head`): not a connection problem
            raise pipe from None
        if any(isinstance(leaf, (httpx2.TransportError, OSError)) for leaf in leaves):
            raise Failed(f"cannot reach {where.mcp_url}: is OpenMemory running?", UNAVAILABLE) from exc
        raise


# ---- the commands ------------------------------------------------------------------------------


def _short(text: str, width: int = 72) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last one left ragged."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < len(headers) - 1 else cell for i, cell in enumerate(line))
        for line in lines
    )


def _when(memory: dict[str, Any]) -> str:
    return str(memory.get("refers_to") or memory.get("created_at") or "")[:10]


def _changes(answer: dict[str, Any]) -> str:
    if answer.get("status") == "accepted":
        return f"accepted as {answer.get('request_id')}: searchable once it is processed"
    results = answer.get("results", [])
    if not results:
        return "nothing to remember in that"
    return table(["EVENT", "ID", "MEMORY"], [[r["event"], r["id"], _short(r["memory"])] for r in results])


def _print(args: argparse.Namespace, answer: dict[str, Any], people: str) -> None:
    print(json.dumps(answer, indent=2, ensure_ascii=False) if args.json else people)


async def run_memory_command(args: argparse.Namespace, where: Target) -> int:
    """add, search, list, get, delete: one tool call each."""
    async with memories(where) as client:
        if args.command == "add":
            answer = await client.call("add_memories", text=args.text, infer=not args.verbatim)
            _print(args, answer, _changes(answer))
        elif args.command == "search":
            answer = await client.call("search_memory", query=args.query, limit=args.limit)
            rows = [
                [f"{m['score']:.3f}", m["id"], _short(m["memory"]), m["app"], _when(m)]
                for m in answer["results"]
            ]
            _print(
                args, answer, table(["SCORE", "ID", "MEMORY", "APP", "WHEN"], rows) if rows else "no match"
            )
        elif args.command == "list":
            answer = await _listed(client, args.limit)
            rows = [[m["id"], _short(m["memory"]), m["app"], _when(m)] for m in answer["results"]]
            _print(args, answer, table(["ID", "MEMORY", "APP", "WHEN"], rows) if rows else "no memories")
        elif args.command == "get":
            answer = await client.call("get_memory", memory_id=args.id)
            if answer.get("memory") is None and not answer.get("history"):
                raise Failed(f"no such memory: {args.id}", NOT_FOUND)
            _print(args, answer, _one(answer))
        elif args.command == "delete":
            answer = await client.call("delete_memories", memory_ids=args.ids)
            _print(args, answer, _changes(answer))
    return OK


#: The most memories the gateway lists in one page.
LIST_PAGE = 500


async def _listed(client: Memories, limit: int) -> dict[str, Any]:
    """Up to `limit` memories, newest first, page after page (following the gateway's cursor)."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(found) < limit:
        arguments: dict[str, Any] = {"limit": min(limit - len(found), LIST_PAGE)}
        if cursor:
            arguments["cursor"] = cursor
        page = await client.call("list_memories", **arguments)
        found.extend(page["results"])
        cursor = page.get("next_cursor")
        if not cursor or not page["results"]:
            break
    return {"results": found[:limit]}


def _one(answer: dict[str, Any]) -> str:
    memory = answer.get("memory")
    lines = []
    if memory is None:
        lines.append("deleted")
    else:
        lines.extend(
            f"{name + ':':<12}{value}"
            for name, value in (
                ("id", memory["id"]), ("memory", memory["memory"]), ("app", memory["app"]),
                ("categories", ", ".join(memory.get("categories") or [])),
                ("refers to", memory.get("refers_to") or ""), ("created", memory["created_at"]),
                ("updated", memory["updated_at"]),
            )
        )  # fmt: skip
    lines.append("history:")
    for change in answer.get("history", []):
        text = _short(change.get("after") or change.get("before") or "", 60)
        if change.get("state"):  # archived by consolidation: merged into another memory, or expired
            text += f"  [{change['state']}" + (f": {change['reason']}]" if change.get("reason") else "]")
        lines.append(f"  {change['at'][:19]}  {change['event']:<6}  {change['app']:<12}  {text}")
    return "\n".join(lines)


# ---- the admin API: export, and imports of the big assistants' exports ---------------------------


def _admin(where: Target, timeout: float | None = 120) -> httpx.Client:
    return httpx.Client(
        base_url=where.admin_url + "/api/v1",
        headers={"Authorization": f"Bearer {where.key}"},
        timeout=timeout,
    )


def _refused(response: httpx.Response) -> Failed:
    try:
        reason = str(response.json().get("detail"))
    except ValueError:
        reason = response.text[:200] or response.reason_phrase
    return Failed(reason, _status_code(response.status_code))


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        raise Failed(f"cannot reach {url}: is OpenMemory running? ({exc})", UNAVAILABLE) from exc


def export(args: argparse.Namespace, where: Target) -> int:
    """Everything of the key's user, as the dashboard's export, written to FILE."""
    with _reaching(where.admin_url), _admin(where) as admin:
        response = admin.get("/export")
    if response.status_code != 200:
        raise _refused(response)
    args.file.write_bytes(response.content)
    count = len(response.json().get("memories", []))
    if args.json:
        print(json.dumps({"file": str(args.file), "memories": count}))
    else:
        print(f"wrote {count} memories to {args.file}")
    return OK


def import_conversations(args: argparse.Namespace, where: Target) -> int:
    """Upload a ChatGPT or Claude conversations.json; the server checks it whole, then adds the
    messages one by one, streaming where it stands, which is printed as "n/m messages"."""
    path: Path = args.file
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Failed(f"cannot read {path}: {exc.strerror}", USAGE) from exc
    if size > MAX_IMPORT_FILE_BYTES:
        raise Failed(f"{path} is larger than {MAX_IMPORT_FILE_BYTES // (1024 * 1024)} MB: split it", USAGE)
    params = {"include_assistant": "true" if args.include_assistant else "false"}
    last: dict[str, Any] = {}
    shown = 0.0
    with _reaching(where.admin_url), _admin(where, timeout=None) as admin:
        request = admin.build_request(
            "POST", f"/import/{args.source}", content=path.read_bytes(), params=params,
            headers={"Accept": "application/x-ndjson", "Content-Type": "application/json"},
        )  # fmt: skip
        response = admin.send(request, stream=True)
        try:
            if response.status_code != 200:
                response.read()
                raise _refused(response)
            for line in response.iter_lines():
                if not line.strip():
                    continue
                last = json.loads(line)
                final = last.get("finished") or last.get("error")
                if final or time.monotonic() - shown > 0.5:
                    print(f"{last['done']}/{last['messages']} messages", file=sys.stderr, flush=True)
                    shown = time.monotonic()
        finally:
            response.close()
    if last.get("error"):
        raise Failed(f"the import stopped: {last['error']} (run it again to go on)", UNAVAILABLE)
    if not last.get("finished"):
        raise Failed("the import stopped before the end (run it again to go on)", UNAVAILABLE)
    if args.json:
        print(json.dumps(last))
    else:
        print(
            f"imported {last['messages']} messages of {last['conversations']} conversations: "
            f"{last['added']} memories added, {last['skipped']} messages imported before"
            + (f", {last['accepted']} still being processed" if last["accepted"] else "")
            + (f", {last['too_long']} too long to import" if last["too_long"] else "")
        )
    return OK
