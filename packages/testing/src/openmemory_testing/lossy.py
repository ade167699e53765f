"""A lossy link to a real NATS server: the fault a dying node causes, made on purpose.

When a NATS node is killed, a message already on its way through it is lost; the client hears
nothing and waits out its timeout. `LossyLink` is a TCP relay between a client and a real
`nats-server` that drops the first `count` messages the client publishes to a subject starting
with `prefix` and relays every other byte as it is, so a test can show that a read whose request
was lost is asked again. It reads the client protocol only as far as framing needs: a `PUB` or
`HPUB` line ends with the size of its payload, which follows with a CRLF; every other operation is
one line.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class LossyLink:
    def __init__(self, upstream_url: str, prefix: str, count: int = 1) -> None:
        target = urlsplit(upstream_url)
        self.userinfo = target.netloc.rpartition("@")[0]  # the server's credentials, kept in the URL
        self.host, self.port = target.hostname or "127.0.0.1", target.port or 4222
        self.prefix = prefix.encode()
        self.left = count
        self.dropped: list[str] = []
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Listen on a free local port; the URL a client connects to instead of the server's."""
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"nats://{self.userinfo + '@' if self.userinfo else ''}127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _link(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(self.host, self.port)
        for pump in (self._relay(server_in, client_out), self._filter(client_in, server_out)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _relay(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    async def _filter(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """The client's operations, each passed on whole unless it is a message to drop."""
        buffer = b""
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                buffer += data
                while (end := buffer.find(b"\r\n")) >= 0:
                    line = buffer[:end].split()
                    publish = bool(line) and line[0].upper() in (b"PUB", b"HPUB")
                    size = end + 2
                    if publish:
                        size += int(line[-1]) + 2
                        if len(buffer) < size:
                            break  # the payload is still coming
                    operation, buffer = buffer[:size], buffer[size:]
                    if publish and self.left > 0 and len(line) > 1 and line[1].startswith(self.prefix):
                        self.left -= 1
                        self.dropped.append(line[1].decode())
                        continue
                    sink.write(operation)
                await sink.drain()
        sink.close()
