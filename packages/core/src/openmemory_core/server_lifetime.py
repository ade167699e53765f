"""What keeps an embedded server to the life of the process that started it, and to one copy per store.

The servers run in their own process groups (a Ctrl-C reaches only the runtime, which stops them
in order), so a SIGKILL of the runtime's group (an OOM kill, a crash, `kill -9` of `make run`)
does not reach them. Three guards, because each alone fails somewhere:

- **The parent-death signal** (Linux): the kernel sends the server SIGTERM when the thread that
  started it ends. asyncio starts children on the event loop's thread, the one that supervises
  them, so a server never outlives its supervisor. Elsewhere there is no such signal: the next
  start stops what a killed run left (below), and says so.
- **A record per server** (`<data dir>/run/<name>.pid.json`: pid, start time, boot id, executable,
  and the supervisor's pid and start time): the next start finds a server a previous run left
  running and stops it, SIGTERM then SIGKILL. The start time (`/proc/<pid>/stat`), the boot id and
  the executable make sure a recycled pid is never signalled; a server whose supervisor still runs
  is not a leftover, and is left alone.
- **A lock file per store** (`<store>/server.lock`, `flock`): taken by the supervisor before the
  server starts and inherited by the server, so it is held while either of them lives; a second
  server on the same store cannot start, whoever starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from openmemory_core.errors import ConfigurationError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_DEATH_SIGNAL = signal.SIGTERM  # both servers flush their store and exit on it
LINUX = sys.platform.startswith("linux")
PROC = Path("/proc")


def parent_death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get SIGTERM when the thread forking it ends; None where
    the kernel has no such signal (not Linux).

    It runs in the child between fork and exec, so it only calls what was resolved before the fork.
    If the parent died before the signal was armed, the child exits at once instead of running on.
    """
    if not LINUX:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    signum = int(PARENT_DEATH_SIGNAL)

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            os._exit(126)  # Popen reports the failed start
        if os.getppid() != parent:  # the parent is already gone: the signal will never come
            os._exit(0)

    return arm


def boot_id() -> str:
    with contextlib.suppress(OSError):
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    return ""


@dataclass(frozen=True)
class ProcStat:
    state: str
    ppid: int
    start_time: int  # clock ticks after boot: with the boot id, no other process ever has it


def proc_stat(pid: int) -> ProcStat | None:
    """What `/proc/<pid>/stat` says of a process, or None when it is gone (or there is no /proc)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return ProcStat(state=fields[0], ppid=int(fields[1]), start_time=int(fields[19]))


def executable(pid: int) -> str:
    try:
        return os.readlink(PROC / str(pid) / "exe").removesuffix(" (deleted)")  # replaced by an upgrade
    except OSError:
        return ""


@dataclass(frozen=True)
class ServerRecord:
    """A started server, as the next start needs it to find and stop it safely."""

    name: str
    pid: int
    start_time: int
    boot_id: str
    exe: str
    argv: list[str]
    supervisor_pid: int
    supervisor_start_time: int

    @classmethod
    def of(cls, name: str, pid: int, argv: list[str]) -> ServerRecord | None:
        """The record of a child just started by this process; None without /proc."""
        mine, child = proc_stat(os.getpid()), proc_stat(pid)
        if mine is None or child is None:
            return None
        exe = os.path.realpath(argv[0])
        return cls(name, pid, child.start_time, boot_id(), exe, argv, os.getpid(), mine.start_time)

    @classmethod
    def read(cls, path: Path) -> ServerRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def _is(self, pid: int, start_time: int) -> ProcStat | None:
        found = proc_stat(pid)
        if found is None or found.start_time != start_time or boot_id() != self.boot_id:
            return None
        return found

    def running(self) -> bool:
        """This very server still runs: not exited (a zombie has), and its pid not reused."""
        found = self._is(self.pid, self.start_time)
        return found is not None and found.state != "Z" and executable(self.pid) == self.exe

    def supervised(self) -> bool:
        """Its supervisor still runs and is still its parent: a live run's server, not a leftover."""
        found, supervisor = proc_stat(self.pid), self._is(self.supervisor_pid, self.supervisor_start_time)
        return (
            found is not None
            and found.ppid == self.supervisor_pid
            and supervisor is not None
            and supervisor.state != "Z"
        )


def stop_leftover(record_path: Path, grace: float = 10.0) -> int | None:
    """Stop the server a previous run recorded at `record_path` and left running; its pid, or None
    when there was none. SIGTERM, then SIGKILL after `grace` seconds. Blocks: run it in a thread."""
    record = ServerRecord.read(record_path)
    if record is None:
        return None
    if not record.running():
        record_path.unlink(missing_ok=True)
        return None
    if record.supervised():
        raise ConfigurationError(
            f"{record.name} (pid {record.pid}) on this store is run by process {record.supervisor_pid}: "
            "stop that process first, or choose another --data-dir"
        )
    log.warning("stopping %s (pid %d): a previous run left it running", record.name, record.pid)
    handle = _pidfd(record.pid)
    try:
        if not record.running():  # re-checked with the pid pinned: a reused pid is never signalled
            record_path.unlink(missing_ok=True)
            return None
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            _send(record.pid, handle, sig)
            deadline = time.monotonic() + wait
            while record.running() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not record.running():
                record_path.unlink(missing_ok=True)
                return record.pid
        raise ConfigurationError(f"{record.name} (pid {record.pid}) left by a previous run would not stop")
    finally:
        if handle is not None:
            os.close(handle)


def _pidfd(pid: int) -> int | None:
    """A handle on the process itself (Linux 5.3+): signals through it cannot reach a reused pid."""
    with contextlib.suppress(AttributeError, OSError):
        return os.pidfd_open(pid)
    return None


def _send(pid: int, handle: int | None, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        if handle is not None:
            signal.pidfd_send_signal(handle, sig)
        else:
            os.kill(pid, sig)


class StoreLock:
    """`<store>/server.lock`, held by one server's supervisor and inherited by the server."""

    def __init__(self, name: str, store: Path) -> None:
        self.name = name
        self.path = store / "server.lock"
        self.fd: int | None = None

    async def acquire(self, wait: float = 10.0) -> None:
        """Take the lock, waiting up to `wait` seconds for a server that is still exiting."""
        if self.fd is not None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.1)
                    continue
                os.close(fd)
                holders = ", ".join(map(str, holding(self.path))) or "unknown"
                raise ConfigurationError(
                    f"the store {self.path.parent} is in use by another {self.name} "
                    f"(process {holders}): stop it, or choose another --data-dir"
                ) from None
            self.fd = fd
            return

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the server, if it still ran, would hold it on
            self.fd = None


def holding(path: Path) -> list[int]:
    """The processes with `path` open (this user's: others' are not readable), this one excluded."""
    target, found = str(path), []
    with contextlib.suppress(OSError):
        for entry in PROC.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) == target for fd in (entry / "fd").iterdir()):
                    found.append(int(entry.name))
    return sorted(found)
