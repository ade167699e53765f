"""A pytest plugin with real servers for every test suite of the workspace.

`nats-server` and FalkorDB run as real processes on free loopback ports with temporary data,
once per test session; tests isolate themselves with random user ids and names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import pytest_asyncio

from openmemory_core.bus import Bus
from openmemory_core.embedded import embedded_falkordb, embedded_nats, free_port
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.graph import GraphStore, open_graph_store
from openmemory_core.runtime import health_port
from openmemory_core.vectors import QdrantVectorStore, VectorStore


def unique(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture(scope="session")
async def nats_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    proc, url = embedded_nats(tmp_path_factory.mktemp("nats"))
    await proc.start()
    yield url
    await proc.stop()


@pytest_asyncio.fixture(scope="session")
async def graph_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    proc, url = embedded_falkordb(tmp_path_factory.mktemp("falkordb"))
    await proc.start()
    yield url
    await proc.stop()


@pytest_asyncio.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    connected = await Bus.connect(nats_url, "test", partitions=4)
    yield connected
    await connected.close()


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest_asyncio.fixture
async def graph(graph_url: str) -> AsyncIterator[GraphStore]:
    store = open_graph_store(graph_url)
    await store.ensure_schema()
    yield store
    await store.close()


@pytest.fixture(scope="session")
def neo4j_url() -> Iterator[str]:
    """A Neo4j server in a container, where a Docker engine runs."""
    from testcontainers.neo4j import Neo4jContainer

    try:
        container = Neo4jContainer("neo4j:5.26-community", password="openmemory-test")
        container.start()
    except Exception as exc:  # docker.errors.DockerException where no engine runs
        pytest.skip(f"Neo4j tests need a Docker engine (testcontainers): {type(exc).__name__}: {exc}")
    try:
        host, port = container.get_container_host_ip(), container.get_exposed_port(7687)
        yield f"bolt://neo4j:openmemory-test@{host}:{port}"
    finally:
        container.stop()


@pytest_asyncio.fixture(params=["falkordb", "neo4j"])
async def graph_store(request: pytest.FixtureRequest, graph_url: str) -> AsyncIterator[GraphStore]:
    """The same behaviour tests run on FalkorDB (everywhere) and Neo4j (where Docker runs)."""
    url = graph_url if request.param == "falkordb" else request.getfixturevalue("neo4j_url")
    store = open_graph_store(url)
    await store.ensure_schema()
    yield store
    await store.close()


@pytest_asyncio.fixture
async def vectors(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[QdrantVectorStore]:
    """A fresh vector store for the real embedding model (qdrant-client local mode)."""
    store = QdrantVectorStore.open(embedder.model_tag, embedder.dimension, None, tmp_path / "vectors-local")
    await store.ensure_collection()
    yield store
    await store.close()


@dataclass
class RunningSystem:
    """An `openmemory run` subprocess and where to reach it."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    gateway_url: str
    admin_url: str
    log_path: Path
    env: dict[str, str]

    @property
    def mcp_url(self) -> str:
        return f"{self.gateway_url}/mcp"

    def first_key(self) -> str:
        return (self.data_dir / "first-api-key").read_text().strip()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [openmemory_command(), *args, "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, env=self.env, timeout=60, check=check,
        )  # fmt: skip

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop_all(systems: list[RunningSystem]) -> None:
    """Stop several systems at once: signal all, then wait for each."""
    for system in systems:
        if system.process.poll() is None:
            system.process.terminate()
    for system in systems:
        system.stop()


def openmemory_command() -> str:
    return str(Path(sys.executable).parent / "openmemory")


def start_system(
    data_dir: Path,
    target: str = "all",
    extra_env: dict[str, str] | None = None,
    gateway_port: int | None = None,
    admin_port: int | None = None,
    ready_path: str = "/healthz",
    timeout: float = 90,
) -> RunningSystem:
    """Start `openmemory run` and wait until its health endpoint answers 200."""
    gateway_port = gateway_port or free_port()
    admin_port = admin_port or free_port()
    ops_port = free_port()
    env = {**os.environ, **(extra_env or {})}
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-{target.replace(',', '_')}-{gateway_port}.log"
    argv = [
        openmemory_command(), "run", "--target", target, "--data-dir", str(data_dir),
        "--gateway-port", str(gateway_port), "--admin-port", str(admin_port), "--ops-port", str(ops_port),
    ]  # fmt: skip
    with log_path.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    port = health_port(target, gateway_port, admin_port, ops_port)
    system = RunningSystem(
        process, data_dir, f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{admin_port}", log_path, env
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"openmemory exited with {process.returncode}:\n{system.log()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                return system
        time.sleep(0.1)
    system.stop()
    raise RuntimeError(f"openmemory was not healthy within {timeout}s:\n{system.log()[-3000:]}")


@pytest.fixture
def system_factory(tmp_path: Path) -> Iterator[list[RunningSystem]]:
    """Collects started systems and stops every one of them at the end of the test."""
    started: list[RunningSystem] = []
    yield started
    stop_all(started)


async def eventually(check: object, timeout: float = 10.0, interval: float = 0.1) -> object:
    """Await `check()` until it returns something truthy, or fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()  # type: ignore[operator]
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    """A Qdrant server in a container, where a Docker engine runs."""
    from testcontainers.qdrant import QdrantContainer

    try:
        container = QdrantContainer("qdrant/qdrant:v1.16.2")
        container.start()
    except Exception as exc:  # docker.errors.DockerException where no engine runs
        pytest.skip(f"Qdrant server tests need a Docker engine (testcontainers): {type(exc).__name__}: {exc}")
    try:
        yield f"http://{container.get_container_host_ip()}:{container.exposed_rest_port}"
    finally:
        container.stop()


@pytest_asyncio.fixture(params=["edge", "local", "server"])
async def vector_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    """The same behaviour tests run on Qdrant Edge, qdrant-client's local mode and a Qdrant server."""
    tag = f"test{tmp_path.name[-8:].replace('-', '')}-8"
    store: VectorStore
    if request.param == "edge":
        from openmemory_core.edge_vectors import EdgeVectorStore

        store = EdgeVectorStore(tmp_path / "vectors", tag, 8)
    elif request.param == "local":
        store = QdrantVectorStore.open(tag, 8, None, tmp_path / "qdrant")
    else:
        url = request.getfixturevalue("qdrant_server_url")
        store = QdrantVectorStore.open(tag, 8, url, None)
    await store.ensure_collection()
    yield store
    await store.close()


def at(minutes: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)


@dataclass
class RecordedReply:
    """One scripted answer of the recorded-response OpenAI test server."""

    content: str | None = None  # the assistant message's content (a recorded model output)
    status: int = 200
    delay: float = 0.0


class _LocalTestServer:
    """A small HTTP test server on a free loopback port, run in the test's own event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> list[Any]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        import uvicorn
        from starlette.applications import Starlette

        app = Starlette(routes=self.routes())
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


class RecordedOpenAITestServer(_LocalTestServer):
    """A small local OpenAI-compatible HTTP *test server* that answers `/v1/chat/completions` with
    recorded responses, in order (the last one repeats), `/v1/embeddings` with recorded vectors, and
    keeps every request it received.

    It stands in for a hosted LLM, which cannot run here; everything else in the call is real
    (the `openai` client, HTTP, the timeouts).
    """

    def __init__(
        self, replies: list[RecordedReply], embeddings: dict[str, list[float]] | None = None
    ) -> None:
        self.replies = replies
        self.embeddings = embeddings or {}
        self.requests: list[dict[str, Any]] = []
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _completions(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        self.requests.append(await request.json())
        reply = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            error = {
                "error": {"message": f"recorded status {reply.status}", "type": "test", "code": reply.status}
            }
            return JSONResponse(error, status_code=reply.status)
        return JSONResponse(
            {
                "id": f"chatcmpl-recorded-{len(self.requests)}",
                "object": "chat.completion",
                "created": 1700000000,
                "model": "recorded",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": reply.content},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    async def _embeddings(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        body = await request.json()
        self.requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        unknown = [t for t in texts if t not in self.embeddings]
        if unknown:
            return JSONResponse({"error": {"message": f"no recorded embedding for {unknown[0]!r}"}}, 400)
        data = [
            {"object": "embedding", "index": i, "embedding": self.embeddings[t]} for i, t in enumerate(texts)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    def routes(self) -> list[Any]:
        from starlette.routing import Route

        return [
            Route("/v1/chat/completions", self._completions, methods=["POST"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
        ]


class OAuthIntrospectionTestServer(_LocalTestServer):
    """A small local OAuth *test server*: the token introspection endpoint (RFC 7662) of an
    authorization server, answering for the tokens it was given, and keeping every request.

    It stands in for a real authorization server (sign-in pages, consent) that this machine does
    not run; the resource server's side (metadata, challenges, introspection over HTTP) is real.
    """

    def __init__(self, tokens: dict[str, dict[str, Any]], client_id: str, client_secret: str) -> None:
        self.tokens = tokens
        self.credentials = (client_id, client_secret)
        self.requests: list[dict[str, str]] = []
        super().__init__()

    @property
    def issuer_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def introspection_url(self) -> str:
        return f"{self.issuer_url}/introspect"

    async def _introspect(self, request: Any) -> Any:
        import base64

        from starlette.responses import JSONResponse

        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = dict(await request.form())
        self.requests.append({k: str(v) for k, v in form.items()})
        return JSONResponse(self.tokens.get(str(form.get("token")), {"active": False}))

    def routes(self) -> list[Any]:
        from starlette.routing import Route

        return [Route("/introspect", self._introspect, methods=["POST"])]


def recorded(name: str) -> str:
    """A recorded model output from packages/core/tests/data/llm/."""
    return (Path(__file__).resolve().parents[2] / "tests" / "data" / "llm" / name).read_text()
