"""Small local HTTP *test servers* that stand in for what cannot run here: a hosted LLM (recorded
responses on an OpenAI-compatible API) and an OAuth authorization server's introspection endpoint."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Self

from openmemory_core.servers import free_port


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
    """A recorded model output, shipped in this package (`data/llm/`)."""
    return files("openmemory_testing").joinpath("data", "llm", name).read_text()
