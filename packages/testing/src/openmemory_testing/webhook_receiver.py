"""`WebhookReceiverTestServer`: a small local HTTP *test server* that stands in for the endpoint a
person registers as a webhook. It keeps every delivery it received (headers and body), answers 204,
or 500 on the paths it is told to refuse, and can be stopped and started again on the same port
(the test of retries: the sender finds nobody there meanwhile).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Self

from openmemory_core.servers import free_port


@dataclass
class ReceivedDelivery:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class WebhookReceiverTestServer:
    """A webhook receiver test stand-in on a free loopback port, run in the test's event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[ReceivedDelivery] = []
        self.refused: list[ReceivedDelivery] = []
        self.refusing: set[str] = set()  # paths answered with 500
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[ReceivedDelivery]:
        """The deliveries accepted on one path, in arrival order."""
        return [d for d in self.received if d.path == path]

    async def _hook(self, request: Any) -> Any:
        from starlette.responses import Response

        delivery = ReceivedDelivery(
            request.url.path, {k.lower(): v for k, v in request.headers.items()}, await request.body()
        )
        if request.url.path in self.refusing:
            self.refused.append(delivery)
            return Response("refused by the test", status_code=500)
        self.received.append(delivery)
        return Response(status_code=204)

    async def start(self) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        app = Starlette(routes=[Route("/{path:path}", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it (e.g. the port taken)
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop listening: connections are refused until `start` again."""
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._server = self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
