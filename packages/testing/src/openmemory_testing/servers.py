"""Small local HTTP *test servers* that stand in for what cannot run here: a hosted LLM (recorded
responses on an OpenAI-compatible API) and an OAuth authorization server's introspection endpoint;
and `NatsCluster`, real nats-servers clustered on loopback."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Self

import nats
import nats.errors
import nats.js.errors

from openmemory_core.servers import free_port, free_ports, nats_server_binary


@dataclass
class RecordedReply:
    """One scripted answer of the recorded-response OpenAI test server."""

    content: str | None = None  # the assistant message's content (a recorded model output)
    status: int = 200
    delay: float = 0.0
    #: The answer's `usage` (prompt_tokens, completion_tokens); None leaves it out, as some servers do.
    usage: dict[str, int] | None = field(
        default_factory=lambda: {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    )


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
        answer: dict[str, Any] = {
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
        }
        if reply.usage is not None:
            answer["usage"] = reply.usage
        return JSONResponse(answer)

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
    """A recorded model output, shipped in this package (`data/llm/`)."""
    return files("openmemory_testing").joinpath("data", "llm", name).read_text()


@dataclass
class NatsNode:
    """One nats-server of a `NatsCluster`: its ports, store and config stay across restarts."""

    name: str
    port: int
    route_port: int
    store: Path
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class NatsCluster:
    """`size` JetStream nats-servers clustered on loopback: each its own store dir, client
    credentials like the embedded server's, and routes that need credentials of their own. Each
    syncs every JetStream write to disk, as the chart's and compose's servers do.

    `url` lists every node (comma-separated, credentials in each), as `OPENMEMORY_NATS_URL` takes it.
    `kill` is a SIGKILL; `start` brings a node back on the same ports and store.
    """

    root: Path
    size: int = 3
    user: str = "openmemory"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    route_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    nodes: list[NatsNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ports = iter(free_ports(2 * self.size))  # a client and a route port a node, all different
        for i in range(1, self.size + 1):
            self.nodes.append(
                NatsNode(
                    f"n{i}", next(ports), next(ports), self.root / f"n{i}" / "store",
                    self.root / f"n{i}.conf", self.root / f"n{i}.log",
                )
            )  # fmt: skip
        for node in self.nodes:
            node.store.mkdir(parents=True, exist_ok=True)
            node.config.write_text(self._config(node))
            node.config.chmod(0o600)

    def _config(self, node: NatsNode) -> str:
        routes = ", ".join(
            f'"nats-route://route:{self.route_password}@127.0.0.1:{other.route_port}"'
            for other in self.nodes
            if other is not node
        )
        return f"""server_name: {node.name}
listen: 127.0.0.1:{node.port}
authorization {{ user: {self.user}, password: "{self.password}" }}
jetstream {{ store_dir: "{node.store}", max_memory_store: 64MB, max_file_store: 2GB, sync_interval: always }}
cluster {{
  name: openmemory
  listen: 127.0.0.1:{node.route_port}
  authorization {{ user: route, password: "{self.route_password}" }}
  routes: [{routes}]
}}
"""

    def node_url(self, node: NatsNode) -> str:
        return f"nats://{self.user}:{self.password}@127.0.0.1:{node.port}"

    @property
    def url(self) -> str:
        return ",".join(self.node_url(n) for n in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    def launch(self, node: NatsNode) -> None:
        with node.log.open("ab") as out:
            node.process = subprocess.Popen(
                [str(nats_server_binary()), "-c", str(node.config)], stdout=out, stderr=subprocess.STDOUT
            )

    async def start(self, timeout: float = 30.0) -> None:
        """Every node, then wait until JetStream answers on each (a meta leader is elected)."""
        for node in self.nodes:
            if not node.running:
                self.launch(node)
        for node in self.nodes:
            await self.wait_ready(node, timeout)

    async def restart(self, node: NatsNode, timeout: float = 30.0) -> None:
        """Start `node` again and wait until it is back as a peer: it answers, and every stream has a
        leader and all its replicas current (`wait_current`). Answering alone says nothing of the
        copies it still has to catch up on; a second node lost before then leaves a stream without a
        quorum of current copies until one of them is back."""
        self.launch(node)
        await self.wait_ready(node, timeout)
        await self.wait_current(timeout)

    async def wait_current(self, timeout: float = 30.0) -> None:
        """Until every stream has a leader and each of its replicas is online and current."""
        deadline = asyncio.get_running_loop().time() + timeout
        lagging: list[str] = []
        while asyncio.get_running_loop().time() < deadline:
            try:
                lagging = await self._lagging()
            except (OSError, TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
                lagging = [f"(no answer: {type(exc).__name__})"]
            if not lagging:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"NATS streams not current within {timeout}s: {', '.join(lagging)}")

    async def _lagging(self) -> list[str]:
        """The streams without a leader or with a replica missing, offline or behind."""
        urls = [self.node_url(n) for n in self.nodes if n.running]
        nc = await nats.connect(urls, connect_timeout=2, allow_reconnect=False, error_cb=_quiet)
        try:
            streams = await nc.jetstream().streams_info()
        finally:
            await nc.close()
        lagging = []
        for stream in streams:
            cluster, wanted = stream.cluster, (stream.config.num_replicas or 1) - 1
            replicas = (cluster.replicas or []) if cluster is not None else []
            current = [r for r in replicas if r.current and not r.offline]
            if cluster is None or not cluster.leader or len(current) < wanted:
                lagging.append(str(stream.config.name))
        return lagging

    async def wait_ready(self, node: NatsNode, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"nats-server {node.name} exited:\n{node.log.read_text()[-2000:]}")
            if await self._answers(self.node_url(node)):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"nats-server {node.name} not ready within {timeout}s")

    @staticmethod
    async def _answers(url: str) -> bool:
        try:
            nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False, error_cb=_quiet)
        except (OSError, TimeoutError, nats.errors.Error):
            return False
        try:
            await nc.jetstream().account_info()
            return True
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error):
            return False
        finally:
            await nc.close()

    def kill(self, node: NatsNode) -> None:
        """SIGKILL: no goodbye to the peers, no flush."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    async def stream_leader(self, stream: str) -> NatsNode:
        """The node that leads `stream` now (JetStream's stream info, asked of any live node)."""
        url = ",".join(self.node_url(n) for n in self.nodes if n.running)
        nc = await nats.connect(url.split(","), connect_timeout=2, allow_reconnect=False, error_cb=_quiet)
        try:
            info = await nc.jetstream().stream_info(stream)
        finally:
            await nc.close()
        assert info.cluster is not None and info.cluster.leader, f"{stream} has no leader"
        return self.node(info.cluster.leader)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 10 s)."""
        for node in self.nodes:
            if node.running and node.process is not None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()


async def _quiet(_: Exception) -> None:
    pass
