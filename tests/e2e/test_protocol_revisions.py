"""Every protocol revision a client may speak, through every URL form the gateway serves, each with
a real client of that revision:

- the MCP Python SDK 2.x client at 2026-07-28 (`server/discover`, no `initialize`, no session; the
  `Mcp-Method`/`Mcp-Name` headers), and at 2025-11-25 for the trace test;
- the MCP Python SDK 1.x client (`mcp<2`, in a virtual environment of its own that uv builds from
  PyPI once and the pytest cache keeps) at 2024-11-05, 2025-03-26, 2025-06-18 and 2025-11-25, over
  streamable HTTP and the legacy SSE transport (`tests/e2e/data/mcp1_client.py`);
- the MCP Inspector CLI from npm, both its protocol eras, over streamable HTTP and SSE;
- hand-written JSON-RPC only where no client would send it: wrong 2026-07-28 routing headers.

A client that cannot be had (PyPI or npm unreachable, no npm) skips with the reason, unless
OPENMEMORY_REQUIRE_CLIENTS=1 (CI), where it fails (`protocol_support.py`).

Trace context: the gateway runs with OTLP export to a receiver in this process, so the test sees
the spans of the real `openmemory run`; the client's `_meta.traceparent` must be the parent of
the SDK's server span, and the gateway's `mcp.tool` span its child.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import Any

import httpx
import httpx2
import pytest
import pytest_asyncio
from e2e_support import Client, ToolFailed
from mcp import Client as SdkClient
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitRequestParams, ElicitResult
from opentelemetry.sdk.trace import TracerProvider
from protocol_support import Inspector, SpanSink, sdk1_python

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.keys import create_key
from openmemory_core.runtime import read_endpoints
from openmemory_testing import RunningSystem, start_system, unique

MODERN = "2026-07-28"
#: The newest SDK 1.x on PyPI when this was written; pinned so the cached venv stays valid.
MCP1 = "mcp==1.30.0"
#: Pinned: on Node < 22 npm would otherwise pick 0.15, which cannot send an Authorization header.
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
CLIENT_SCRIPT = Path(__file__).parent / "data" / "mcp1_client.py"

#: The tools every client drives; a tool the gateway lists beyond these fails the tests until added.
DRIVEN_TOOLS = {
    "add_memories", "search_memory", "list_memories", "get_memory", "get_request",
    "delete_memories", "delete_all_memories",
}  # fmt: skip
#: URL path → the app the memories are recorded under (the keys here are for any app).
HTTP_FORMS = {"/mcp": "default", "/mcp/claude/http/me": "claude"}
SSE_FORMS = {"/sse": "default", "/mcp/windsurf/sse/me": "windsurf"}


# --- The system, exporting its traces over OTLP/HTTP to a receiver in this process -------------


@pytest.fixture(scope="module")
def sink() -> Iterator[SpanSink]:
    receiver = SpanSink()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, sink: SpanSink) -> Iterator[RunningSystem]:
    running = start_system(
        tmp_path_factory.mktemp("revisions") / "data",
        extra_env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.url, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    yield running
    running.stop()


async def fresh_key(system: RunningSystem) -> str:
    """A key for a new user, for any app, made on the bus (the CLI takes a second or more a key)."""
    endpoints = read_endpoints(system.data_dir)
    assert endpoints is not None
    bus = await Bus.connect(str(endpoints["nats_url"]), "protocol-test", c.DEFAULT_PARTITIONS)
    try:
        return (await create_key(await bus.keys_bucket(), unique()))[0]
    finally:
        await bus.close()


# --- What every client does, and what it must get --------------------------------------------


def check_tool_list(names: Iterable[str]) -> set[str]:
    """Every tool listed is one the tests drive (`get_request` may be absent in older builds)."""
    tools = set(names)
    assert tools <= DRIVEN_TOOLS and DRIVEN_TOOLS - tools <= {"get_request"}, sorted(tools)
    return tools


def check_every_tool(calls: dict[str, dict[str, Any]], text: str, app: str) -> None:
    """`calls[tool] = {"error": text or None, "result": structured content}` from the sequence
    add → search → list → get → get_request → delete → add again → delete all → list."""
    assert {name: call["error"] for name, call in calls.items() if call["error"]} == {}
    added = calls["add_memories"]["result"]
    assert added["status"] == "done"
    assert [(r["memory"], r["event"]) for r in added["results"]] == [(text, "ADD")]
    memory_id = added["results"][0]["id"]
    hit = calls["search_memory"]["result"]["results"][0]
    assert (hit["id"], hit["app"]) == (memory_id, app)
    assert [m["memory"] for m in calls["list_memories"]["result"]["results"]] == [text]
    got = calls["get_memory"]["result"]
    assert got["memory"]["memory"] == text
    assert [(e["event"], e["app"]) for e in got["history"]] == [("ADD", app)]
    if "get_request" in calls:
        assert added["request_id"] in json.dumps(calls["get_request"]["result"])
    deleted = calls["delete_memories"]["result"]["results"]
    assert [(r["id"], r["event"]) for r in deleted] == [(memory_id, "DELETE")]
    assert [r["event"] for r in calls["delete_all_memories"]["result"]["results"]] == ["DELETE"]
    assert calls["list_after_wipe"]["result"]["results"] == []


async def drive_every_tool(client: Client, tools: set[str], text: str) -> dict[str, dict[str, Any]]:
    """The sequence `check_every_tool` judges (the SDK 1.x script runs the same one)."""
    calls: dict[str, dict[str, Any]] = {}

    async def call(name: str, tool: str, **arguments: Any) -> dict[str, Any]:
        try:
            calls[name] = {"error": None, "result": await client.call(tool, **arguments)}
        except ToolFailed as exc:
            calls[name] = {"error": str(exc), "result": None}
        return calls[name]["result"] or {}

    added = await call("add_memories", "add_memories", text=text, infer=False)
    memory_id = (added.get("results") or [{}])[0].get("id", "")
    await call("search_memory", "search_memory", query=text, limit=3)
    await call("list_memories", "list_memories")
    await call("get_memory", "get_memory", memory_id=memory_id)
    if "get_request" in tools:
        await call("get_request", "get_request", request_id=added.get("request_id", ""))
    await call("delete_memories", "delete_memories", memory_ids=[memory_id])
    await call("again", "add_memories", text=text + " Again.", infer=False)
    await call("delete_all_memories", "delete_all_memories", confirm=True)
    await call("list_after_wipe", "list_memories")
    return calls


# --- The SDK 2.x client at 2026-07-28 --------------------------------------------------------


@dataclass
class Wire:
    """What the client's own HTTP client sent and received."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    responses: list[httpx2.Response] = field(default_factory=list)

    async def request(self, request: httpx2.Request) -> None:
        body = json.loads(request.content) if request.method == "POST" and request.content else {}
        self.requests.append({"http": request.method, "headers": dict(request.headers), "body": body})

    async def response(self, response: httpx2.Response) -> None:
        self.responses.append(response)


@contextlib.asynccontextmanager
async def sdk2_client(
    url: str, key: str, mode: str = "auto", **options: Any
) -> AsyncIterator[tuple[SdkClient, Wire]]:
    wire = Wire()
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [wire.request], "response": [wire.response]}
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30, event_hooks=hooks) as http,
        SdkClient(streamable_http_client(url, http_client=http), mode=mode, **options) as client,
    ):
        yield client, wire


@pytest.mark.parametrize("path", HTTP_FORMS)
async def test_sdk2_client_speaks_2026_07_28_statelessly(system: RunningSystem, path: str) -> None:
    asked: list[str] = []

    async def elicitation(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    text = f"The spare key for {path} is under the blue flowerpot."
    url = system.gateway_url + path
    async with sdk2_client(url, await fresh_key(system), elicitation_callback=elicitation) as (sdk, wire):
        assert sdk.protocol_version == MODERN
        discovered = sdk.session.discover_result
        assert discovered is not None and MODERN in discovered.supported_versions
        assert sdk.server_info is not None and sdk.server_info.name == "openmemory"
        assert (discovered.instructions or "").startswith("OpenMemory is the user's private")
        tools = check_tool_list(t.name for t in (await sdk.list_tools()).tools)
        client = Client(sdk.session)
        check_every_tool(await drive_every_tool(client, tools, text), text, HTTP_FORMS[path])
        # A 2026-07-28 server cannot ask its client mid-call: the wipe needs confirm, nobody is asked.
        with pytest.raises(ToolFailed, match="confirm: true"):
            await client.call("delete_all_memories")
        assert asked == []

    methods = [r["body"].get("method") for r in wire.requests]
    assert methods[0] == "server/discover" and "initialize" not in methods
    for sent in wire.requests:  # one self-contained POST per request, each naming what it carries
        assert sent["http"] == "POST"
        body, headers = sent["body"], sent["headers"]
        assert headers["mcp-protocol-version"] == MODERN and headers["mcp-method"] == body["method"]
        assert body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == MODERN
        assert "mcp-session-id" not in headers
        if body["method"] == "tools/call":
            assert headers["mcp-name"] == body["params"]["name"]
    assert all(r.status_code == 200 and "mcp-session-id" not in r.headers for r in wire.responses)


def _modern_post(
    system: RunningSystem, key: str | None, body: dict[str, Any], **headers: str
) -> httpx.Response:
    sent = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "Mcp-Method": body["method"],
        **({"Mcp-Name": body["params"]["name"]} if "name" in body["params"] else {}),
        **({"Authorization": f"Bearer {key}"} if key else {}),
        **headers,
    }
    return httpx.post(f"{system.gateway_url}/mcp", json=body, headers=sent, timeout=30)


def _modern_call(tool: str, version: str = MODERN, **arguments: Any) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "hand-written", "version": "0"},
    }
    params = {"name": tool, "arguments": arguments, "_meta": meta}
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}


async def test_routing_headers_that_disagree_with_the_body_are_refused(system: RunningSystem) -> None:
    """Hand-written JSON-RPC: no client sends headers that contradict its body. The gateway itself
    reads neither header (the key, and the tool that actually runs, decide everything); the SDK
    refuses the mismatch before any tool runs, after the gateway's key and rate checks."""
    key = await fresh_key(system)
    add = _modern_call("add_memories", text="The attic ladder is broken.", infer=False)
    answer = _modern_post(system, key, add)  # the control: this hand-written request is well formed
    assert answer.status_code == 200 and answer.json()["result"]["structuredContent"]["status"] == "done"

    other = _modern_call("add_memories", text="The cellar light is out.", infer=False)
    for headers, code in (
        ({"Mcp-Name": "search_memory"}, -32020),  # HEADER_MISMATCH
        ({"Mcp-Method": "tools/list"}, -32020),
    ):
        refused = _modern_post(system, key, other, **headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, code), headers
    future = _modern_post(system, key, _modern_call("add_memories", "2099-01-01", text="Later.", infer=False))
    error = future.json()["error"]
    assert (future.status_code, error["code"]) == (400, -32022)  # UNSUPPORTED_PROTOCOL_VERSION
    assert MODERN in error["data"]["supported"]
    assert _modern_post(system, None, other).status_code == 401  # the gateway's check comes first
    stream = httpx.get(
        f"{system.gateway_url}/mcp",
        headers={
            "Authorization": f"Bearer {key}",
            "MCP-Protocol-Version": MODERN,
            "Accept": "text/event-stream",
        },
    )
    assert stream.status_code == 405  # 2026-07-28 has no standing GET stream

    listed = _modern_post(system, key, _modern_call("list_memories"))
    assert [m["memory"] for m in listed.json()["result"]["structuredContent"]["results"]] == [
        "The attic ladder is broken."
    ]


@pytest.mark.parametrize("mode", [MODERN, "legacy"])
async def test_the_clients_trace_context_is_the_parent_of_the_tool_span(
    system: RunningSystem, sink: SpanSink, mode: str
) -> None:
    """`_meta.traceparent` (the SDK client injects it at every revision: 2026-07-28 and, to compare,
    the 2025-11-25 handshake) → the SDK's server span `tools/call <tool>` → the gateway's
    `mcp.tool <tool>` → ingest, all in the client's trace."""
    tracer = TracerProvider().get_tracer("assistant")  # the client's own, not this process's global one
    key = await fresh_key(system)
    with tracer.start_as_current_span("assistant turn") as turn:
        async with sdk2_client(system.mcp_url, key, mode=mode) as (sdk, wire):
            assert sdk.protocol_version == (MODERN if mode == MODERN else "2025-11-25")
            result = await sdk.call_tool("add_memories", {"text": "I keep bees.", "infer": False})
            assert not result.is_error
    trace_id = f"{turn.get_span_context().trace_id:032x}"
    call = next(r["body"] for r in wire.requests if r["body"].get("method") == "tools/call")
    _, sent_trace, sent_parent, _ = call["params"]["_meta"]["traceparent"].split("-")
    assert sent_trace == trace_id

    names = {"tools/call add_memories", "mcp.tool add_memories", "ingest.apply add"}
    spans = sink.trace(trace_id, names)
    assert names <= set(spans), sorted(spans)
    assert spans["tools/call add_memories"].parent_id == sent_parent
    assert spans["mcp.tool add_memories"].parent_id == spans["tools/call add_memories"].span_id


# --- The SDK 1.x client, in a virtual environment of its own -------------------------------------


@pytest.fixture(scope="session")
def mcp1_python(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sdk1_python(pytestconfig, tmp_path_factory, MCP1)


@dataclass(frozen=True)
class Scenario:
    transport: str
    path: str
    version: str

    @property
    def name(self) -> str:
        return f"{self.version} {self.transport} {self.path}"

    @property
    def text(self) -> str:
        return f"At {self.name} the spare key is under the blue flowerpot."


#: Streamable HTTP exists since 2025-03-26; the legacy SSE transport is 2024-11-05's (and still served).
SCENARIOS = [
    *(Scenario("http", p, v) for v in ("2025-03-26", "2025-06-18", "2025-11-25") for p in HTTP_FORMS),
    *(Scenario("sse", p, v) for v in ("2024-11-05", "2025-11-25") for p in SSE_FORMS),
]


@pytest_asyncio.fixture(scope="module")
async def mcp1_reports(system: RunningSystem, mcp1_python: Path) -> dict[str, Any]:
    """Every scenario run by the SDK 1.x script, one after another, as one user."""
    plan = {
        "key": await fresh_key(system),
        "scenarios": [
            {"name": s.name, "transport": s.transport, "url": system.gateway_url + s.path,
             "version": s.version, "text": s.text}
            for s in SCENARIOS
        ],
    }  # fmt: skip
    script = await asyncio.create_subprocess_exec(
        str(mcp1_python), str(CLIENT_SCRIPT), stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(script.communicate(json.dumps(plan).encode()), 240)
    assert script.returncode == 0, err.decode()[-4000:]
    report: dict[str, Any] = json.loads(out)
    assert report["sdk"] == MCP1.split("==")[1]
    return {s["name"]: s for s in report["scenarios"]}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name.replace(" ", "-"))
def test_sdk1_client(mcp1_reports: dict[str, Any], scenario: Scenario) -> None:
    report = mcp1_reports[scenario.name]
    assert (report["negotiated"], report["server"]) == (scenario.version, "openmemory")
    check_tool_list(report["tools"])
    check_every_tool(report["calls"], scenario.text, {**HTTP_FORMS, **SSE_FORMS}[scenario.path])

    sent = report["sent"]
    assert all(r["session_id"] is None for r in sent)  # stateless HTTP; SSE names its session in the URL
    if scenario.transport == "http":
        assert {(r["http"], r["path"]) for r in sent} == {("POST", scenario.path)}
        assert sent[0]["method"] == "initialize"
        assert {r["protocol_version"] for r in sent[1:]} == {scenario.version}
    else:
        messages = scenario.path.removesuffix("/sse/me").removesuffix("/sse") + "/messages/"
        assert (sent[0]["http"], sent[0]["path"]) == ("GET", scenario.path)
        assert {(r["http"], r["path"]) for r in sent[1:]} == {("POST", messages)}


# --- The MCP Inspector CLI (npm), a second independent client (TypeScript SDK) -----------------


@pytest.fixture(scope="session")
def inspector(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    return Inspector.installed(pytestconfig, tmp_path_factory, INSPECTOR)


async def test_inspector_cli_in_both_eras_and_over_sse(system: RunningSystem, inspector: Inspector) -> None:
    key, base = await fresh_key(system), system.gateway_url
    modern, sse = f"{base}/mcp/inspector/http/me", f"{base}/mcp/inspector/sse/me"
    era, legacy = ("--protocol-era", "modern"), ("--protocol-era", "legacy")

    async def tool(url: str, name: str, arguments: dict[str, Any], *options: str, **kw: str) -> Any:
        call = ("--tool-name", name, "--tool-args-json", json.dumps(arguments), *options)
        result = await inspector(url, key, "tools/call", *call, **kw)
        assert result["isError"] is False, result
        return result["structuredContent"]

    assert (await inspector(modern, key, "initialize", *era))["protocolVersion"] == MODERN
    tools = check_tool_list(t["name"] for t in (await inspector(modern, key, "tools/list", *era))["tools"])
    added = await tool(
        modern, "add_memories", {"text": "The boat is moored at pier 9.", "infer": False}, *era
    )
    memory_id = added["results"][0]["id"]
    hit = (await tool(modern, "search_memory", {"query": "where is the boat moored?"}, *era))["results"][0]
    assert (hit["id"], hit["app"]) == (memory_id, "inspector")
    if "get_request" in tools:
        request = await tool(modern, "get_request", {"request_id": added["request_id"]}, *era)
        assert added["request_id"] in json.dumps(request)

    assert (await inspector(f"{base}/mcp", key, "initialize", *legacy))["protocolVersion"] == "2025-11-25"
    got = await tool(f"{base}/mcp", "get_memory", {"memory_id": memory_id}, *legacy)
    assert got["memory"]["memory"] == "The boat is moored at pier 9."

    assert (await inspector(sse, key, "initialize", transport="sse"))["protocolVersion"] == "2025-11-25"
    assert [m["id"] for m in (await tool(sse, "list_memories", {}, transport="sse"))["results"]] == [
        memory_id
    ]
    deleted = await tool(f"{base}/sse", "delete_memories", {"memory_ids": [memory_id]}, transport="sse")
    assert [r["event"] for r in deleted["results"]] == ["DELETE"]
    await tool(modern, "add_memories", {"text": "The oars are in the shed.", "infer": False}, *era)
    wiped = await tool(modern, "delete_all_memories", {"confirm": True}, *era)
    assert [r["memory"] for r in wiped["results"]] == ["The oars are in the shed."]
