"""Embedded servers never outlive the run that started them, and never run twice on one store.

An `openmemory run` SIGKILLed in the middle of a burst of adds (as an OOM kill does it) takes its
nats-server and FalkorDB with it, though they run in their own process groups; the next start on
the same data dir runs one server per store and has every add it had accepted, once. And servers a
killed run did leave behind (where there is no parent-death signal) are stopped by the next start.
Real processes; /proc is the witness. Linux only: elsewhere the kernel has no parent-death signal.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import mcp_client, new_key

from openmemory_core.runtime import BOOT_ID, rebuild_marker, running_record
from openmemory_core.server_lifetime import ServerRecord, proc_stat
from openmemory_testing import RunningSystem, eventually, start_system, stop_all, unique

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl: Linux")

CLIENTS = 8


def alive(pid: int) -> bool:
    found = proc_stat(pid)
    return found is not None and found.state != "Z"


def servers_on(data_dir: Path) -> dict[str, list[int]]:
    """The server processes /proc shows on each store of `data_dir`: a nats-server given it as its
    JetStream directory, a redis-server working in it (its save children are part of it)."""
    found: dict[str, list[int]] = {"nats": [], "graph": []}
    redis: dict[int, int] = {}  # pid -> parent
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            exe = os.path.basename(os.readlink(entry / "exe"))
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone, or not ours
            continue
        if not alive(pid):
            continue
        if exe == "nats-server" and str(data_dir / "nats").encode() in argv:
            found["nats"].append(pid)
        elif exe == "redis-server" and cwd == str(data_dir / "graph"):
            stat = proc_stat(pid)
            redis[pid] = stat.ppid if stat else 0
    found["graph"] = sorted(pid for pid, parent in redis.items() if parent not in redis)
    return found


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids this test may leave running if it fails: SIGKILLed at the end, whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def systems() -> Iterator[list[RunningSystem]]:
    started: list[RunningSystem] = []
    yield started
    stop_all(started)


class Burst:
    """CLIENTS clients adding memories one after another until their server goes away."""

    def __init__(self, system: RunningSystem, key: str) -> None:
        self.system, self.key = system, key
        self.sent: set[str] = set()
        self.accepted: list[str] = []  # answered "done" or "accepted"
        self.unanswered = 0  # in flight when the server went
        self.hundred_accepted = asyncio.Event()

    async def client(self, name: str) -> None:
        try:
            async with mcp_client(self.system.mcp_url, self.key) as client:
                for i in range(100_000):
                    text = f"note {i} from {name}"
                    self.sent.add(text)
                    answer = await client.call("add_memories", text=text, infer=False)
                    assert answer["status"] in ("done", "accepted"), answer
                    self.accepted.append(text)
                    if len(self.accepted) >= 100:
                        self.hundred_accepted.set()
        except Exception:  # the connection broke: the kill
            self.unanswered += 1

    async def run(self) -> None:
        await asyncio.gather(*(self.client(f"c{n}") for n in range(CLIENTS)))


async def stored_texts(system: RunningSystem, key: str) -> list[str]:
    async with mcp_client(system.mcp_url, key) as client:
        return await client.texts()


async def test_a_sigkilled_run_takes_its_servers_along_and_its_accepted_adds_survive(
    tmp_path: Path, systems: list[RunningSystem], leftovers: list[int]
) -> None:
    data = tmp_path / "data"
    system = start_system(data)
    systems.append(system)
    before = servers_on(data)
    assert [len(pids) for pids in before.values()] == [1, 1], before
    servers = [*before["nats"], *before["graph"]]
    leftovers.extend(servers)
    key = new_key(system, unique())

    burst = Burst(system, key)
    adding = asyncio.create_task(burst.run())
    await asyncio.wait(
        [adding, asyncio.create_task(burst.hundred_accepted.wait())],
        timeout=120,
        return_when=asyncio.FIRST_COMPLETED,
    )
    assert not adding.done(), f"the burst ended before the kill: {adding.exception()!r}"
    os.kill(system.process.pid, signal.SIGKILL)  # the process alone, as the OOM killer picks one
    accepted_at_kill = len(burst.accepted)
    await asyncio.to_thread(system.process.wait)
    await asyncio.wait_for(adding, 60)
    # The kill hit the burst: every client had an add in flight that never got its answer.
    assert burst.unanswered == CLIENTS and len(burst.accepted) >= accepted_at_kill >= 100

    assert await asyncio.to_thread(wait_gone, servers, 5) == [], f"outlived their parent: {servers}"

    restarted = start_system(data)
    systems.append(restarted)
    after = servers_on(data)
    assert [len(pids) for pids in after.values()] == [1, 1], after
    assert not set(servers) & {*after["nats"], *after["graph"]}

    deadline = time.monotonic() + 120
    while True:  # ingest applies, after the restart, what was accepted but not yet applied
        stored = await stored_texts(restarted, key)
        assert len(stored) == len(set(stored)), "an add is stored twice"
        assert set(stored) <= burst.sent, set(stored) - burst.sent
        missing = set(burst.accepted) - set(stored)
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert not missing, (
        f"{len(missing)} of {len(burst.accepted)} accepted adds are lost: {sorted(missing)[:5]}"
    )
    # A process killed while the machine runs on loses nothing, so the next start has nothing to say.
    assert "the machine went down" not in restarted.log()


async def test_what_a_machine_that_went_down_lost_from_the_stores_is_rebuilt_from_the_events(
    tmp_path: Path, systems: list[RunningSystem], leftovers: list[int]
) -> None:
    """A power cut loses what the embedded vector store and graph had applied but not yet synced
    (their commands acked), never an event (JetStream syncs each write). Played here: after a clean
    stop the stores' folders are copied (what the disk holds); more adds follow, the run is killed,
    and the copies replace the folders, while the events stream keeps everything. The run's record
    (`run/running.json`) now names another boot, as after a cut. The next start says so, ingest
    rebuilds the stores from the events before any new command, and every memory is back; the
    marker goes, so the start after that rebuilds nothing. A clean stop removes the record."""
    data = tmp_path / "data"
    before = {f"Before the cut, note {i}: the greenhouse needs {i} litres of water." for i in range(3)}
    after = {f"After the copy, note {i}: the beehive moved {i} metres east." for i in range(3)}
    system = start_system(data)
    systems.append(system)
    key = new_key(system, unique())
    async with mcp_client(system.mcp_url, key) as client:
        for text in sorted(before):
            assert (await client.call("add_memories", text=text, infer=False))["status"] == "done"
    assert system.stop() == 0
    record = running_record(data)
    assert not record.exists()
    disk = tmp_path / "disk"
    for store in ("vectors", "graph"):
        shutil.copytree(data / store, disk / store, symlinks=True)

    system = start_system(data)
    systems.append(system)
    assert json.loads(record.read_text())["boot_id"] == BOOT_ID.read_text().strip()
    servers = [pid for pids in servers_on(data).values() for pid in pids]
    leftovers.extend(servers)
    async with mcp_client(system.mcp_url, key) as client:
        for text in sorted(after):
            assert (await client.call("add_memories", text=text, infer=False))["status"] == "done"
        assert set(await client.texts()) == before | after
    os.kill(system.process.pid, signal.SIGKILL)
    await asyncio.to_thread(system.process.wait)
    assert await asyncio.to_thread(wait_gone, servers, 5) == []
    for store in ("vectors", "graph"):  # the writes after the copy never reached the disk
        shutil.rmtree(data / store)
        shutil.copytree(disk / store, data / store, symlinks=True)
    record.write_text(json.dumps({"pid": 4_000_000, "boot_id": "a-boot-before-the-power-cut"}))

    system = start_system(data)
    systems.append(system)
    said = [line for line in system.log().splitlines() if "the machine went down while" in line]
    assert len(said) == 1 and str(data) in said[0], said
    async with mcp_client(system.mcp_url, key) as client:

        async def all_back() -> bool:  # the log line comes once the graph is rebuilt and the marker gone
            rebuilt = "rebuilt 6 memories of 1 users" in system.log()
            return rebuilt and set(await client.texts()) == before | after

        await eventually(all_back, timeout=60, interval=0.5)
        found = await client.call("search_memory", query="where did the beehive move?")
        assert found["results"][0]["memory"] in after, found
    assert not rebuild_marker(data).exists()
    assert system.stop() == 0 and not record.exists()
    again = start_system(data)
    systems.append(again)
    assert "the machine went down" not in again.log() and "rebuilding" not in again.log()


PREVIOUS_RUN = """
import asyncio, sys
from pathlib import Path
from openmemory_core import servers

# As on a system without a parent-death signal (or a server that ignored it): a kill of this
# process leaves its servers running, each with its store's lock, recorded under run/.
servers.parent_death_signal = lambda: None

async def main() -> None:
    data = Path(sys.argv[1])
    made = (servers.embedded_nats, servers.embedded_falkordb)
    started = [(await servers.start_embedded(make, data))[0] for make in made]
    print(" ".join(str(s.pid) for s in started), flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


def leave_servers(data: Path, leftovers: list[int]) -> list[int]:
    """Run PREVIOUS_RUN on `data` and SIGKILL it once its servers are ready: their pids."""
    previous = subprocess.Popen(
        [sys.executable, "-c", PREVIOUS_RUN, str(data)], stdout=subprocess.PIPE, text=True
    )
    leftovers.append(previous.pid)
    assert previous.stdout is not None
    left = [int(pid) for pid in previous.stdout.readline().split()]
    leftovers.extend(left)
    previous.kill()
    previous.wait()
    time.sleep(1)
    return left


async def test_a_start_stops_the_servers_a_killed_run_left_on_its_stores(
    tmp_path: Path, systems: list[RunningSystem], leftovers: list[int]
) -> None:
    data = tmp_path / "data"
    left = await asyncio.to_thread(leave_servers, data, leftovers)
    assert all(alive(pid) for pid in left), "the previous run's servers should be left running here"
    assert servers_on(data) == {"nats": left[:1], "graph": left[1:]}

    system = start_system(data)
    systems.append(system)
    assert not any(alive(pid) for pid in left), "the start did not stop the servers left behind"
    now = servers_on(data)
    assert [len(pids) for pids in now.values()] == [1, 1], now
    assert "a previous run left it running" in system.log()
    key = new_key(system, unique())
    async with mcp_client(system.mcp_url, key) as client:
        await client.call("add_memories", text="I grow tomatoes on the balcony.", infer=False)
        assert await client.texts() == ["I grow tomatoes on the balcony."]
    recorded = [ServerRecord.read(data / "run" / f"{name}.pid.json") for name in ("nats-server", "falkordb")]
    assert [r.pid if r else None for r in recorded] == [*now["nats"], *now["graph"]]
