"""An embedded server dies with the process that started it, a killed run's server is stopped at the
next start (and nothing else is), and one store never has two servers. Real processes throughout."""

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openmemory_core.errors import ConfigurationError
from openmemory_core.server_lifetime import ServerRecord, holding, proc_stat, stop_leftover
from openmemory_core.servers import embedded_nats, start_embedded

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl: Linux")

SUPERVISOR = """
import asyncio, sys, threading
from pathlib import Path
from openmemory_core.servers import embedded_falkordb, embedded_nats, start_embedded

async def main() -> None:
    data = Path(sys.argv[1])
    servers = [(await start_embedded(make, data))[0] for make in (embedded_nats, embedded_falkordb)]
    # Threads that end while the supervisor runs (asyncio.to_thread's workers, say) must not take
    # the servers with them: the parent-death signal follows the thread that forked.
    for _ in range(3):
        worker = threading.Thread(target=sum, args=([1, 2],))
        worker.start()
        worker.join()
    print(" ".join(str(s.pid) for s in servers), flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


def gone(pid: int) -> bool:
    found = proc_stat(pid)
    return found is None or found.state == "Z"


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Pids to SIGKILL at the end of the test, whatever it asserted."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_both_servers_die_with_a_sigkilled_supervisor(tmp_path: Path, cleanup: list[int]) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    cleanup.append(supervisor.pid)
    assert supervisor.stdout is not None
    pids = [int(p) for p in supervisor.stdout.readline().split()]
    assert len(pids) == 2, "the supervisor did not start both servers"
    cleanup.extend(pids)
    assert not any(gone(p) for p in pids)  # alive after the worker threads ended
    for pid in pids:  # their own process groups: a kill of the supervisor's group misses them
        assert os.getpgid(pid) == pid != os.getpgid(supervisor.pid)
    supervisor.kill()
    supervisor.wait()
    assert wait_gone(pids, 5) == []


def orphan(argv: list[str]) -> int:
    """Start `argv` through a process that exits at once, as a killed run leaves its servers."""
    starter = (
        "import subprocess, sys; "
        "print(subprocess.Popen(sys.argv[1:], start_new_session=True, stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL).pid)"
    )
    return int(subprocess.check_output([sys.executable, "-c", starter, *argv], text=True))


def record_of(pid: int, argv: list[str], path: Path) -> ServerRecord:
    """What a previous run wrote for `pid`, a run that is gone (no process has start time -1)."""
    made = ServerRecord.of(path.stem, pid, argv)
    assert made is not None
    made = dataclasses.replace(made, supervisor_pid=1, supervisor_start_time=-1)
    path.write_text(made.to_json())
    return made


async def test_a_leftover_is_stopped_and_a_reused_pid_is_not(tmp_path: Path, cleanup: list[int]) -> None:
    argv = ["/bin/sleep", "300"]
    left = orphan(argv)
    cleanup.append(left)
    record = tmp_path / "sleeper.pid.json"
    made = record_of(left, argv, record)

    # The same pid with another start time is another process (the pid was reused): left alone.
    record.write_text(dataclasses.replace(made, start_time=made.start_time - 1).to_json())
    assert stop_leftover(record) is None and not gone(left)
    record.write_text(dataclasses.replace(made, exe="/bin/true").to_json())
    assert stop_leftover(record) is None and not gone(left)

    record.write_text(made.to_json())
    assert stop_leftover(record) == left
    assert wait_gone([left], 2) == []
    assert not record.exists()
    assert stop_leftover(record) is None  # nothing recorded: nothing to do


async def test_a_server_that_ignores_sigterm_is_killed(tmp_path: Path, cleanup: list[int]) -> None:
    argv = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)",
    ]
    left = orphan(argv)
    cleanup.append(left)
    record = tmp_path / "stubborn.pid.json"
    await asyncio.sleep(0.5)  # past its exec, and its SIGTERM handler in place
    record_of(left, argv, record)
    started = time.monotonic()
    assert stop_leftover(record, grace=0.5) == left
    assert wait_gone([left], 2) == [] and time.monotonic() - started < 5


async def test_a_live_runs_server_is_not_a_leftover(tmp_path: Path) -> None:
    server, _ = await start_embedded(embedded_nats, tmp_path)
    try:
        second, _ = embedded_nats(tmp_path)
        with pytest.raises(ConfigurationError, match=f"run by process {os.getpid()}"):
            await second.start()
        assert server.running
    finally:
        await server.stop()
    assert not (tmp_path / "run" / "nats-server.pid.json").exists()


async def test_one_server_per_store_and_the_server_holds_the_lock_itself(tmp_path: Path) -> None:
    server, _ = await start_embedded(embedded_nats, tmp_path)
    lock = tmp_path / "nats" / "server.lock"
    try:
        assert server.pid in holding(lock)  # inherited: held as long as the server runs
        (tmp_path / "run" / "nats-server.pid.json").unlink()  # say, a server nothing recorded
        second, _ = embedded_nats(tmp_path)
        second.lock_wait = 0.5
        with pytest.raises(
            ConfigurationError, match=rf"in use by another nats-server \(process {server.pid}\)"
        ):
            await second.start()
        assert second._lock is None
        # Without its supervisor's handle the server still holds the lock: no copy starts beside it.
        assert server._lock is not None
        server._lock.release()
        with pytest.raises(ConfigurationError, match="in use by another nats-server"):
            await second.start()
    finally:
        await server.stop()
    second.lock_wait = 5
    await second.start()  # free once the server is gone
    await second.stop()
