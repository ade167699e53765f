import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlsplit

import pytest
import redis.asyncio

from openmemory_core import contracts as c
from openmemory_core import servers
from openmemory_core.bus import Bus
from openmemory_core.errors import ConfigurationError, Unavailable
from openmemory_core.runtime import data_dir_lock
from openmemory_core.servers import (
    Health,
    SupervisedProcess,
    embedded_falkordb,
    embedded_nats,
    free_port,
    free_ports,
    make_private,
    pid_alive,
    start_embedded,
    start_on_free_port,
)
from openmemory_core.stores import open_graph_store
from openmemory_core.stores.graph import FalkorDBGraphStore
from openmemory_testing import unique


async def test_a_killed_nats_server_is_restarted_with_its_data(tmp_path: Path) -> None:
    proc, url = await start_embedded(embedded_nats, tmp_path)
    try:
        bus = await Bus.connect(url, "t", partitions=1)
        kv = await bus.keys_bucket()
        await kv.put("k", b"kept")
        await bus.close()
        assert proc._proc is not None
        os.kill(proc._proc.pid, signal.SIGKILL)
        for _ in range(100):
            if proc.restarts == 1 and proc.running:
                break
            await asyncio.sleep(0.1)
        assert proc.restarts == 1
        bus = await Bus.connect(url, "t", partitions=1)
        assert (await (await bus.keys_bucket()).get("k")).value == b"kept"
        await bus.close()
    finally:
        await proc.stop()
    assert not proc.running


async def test_a_frozen_falkordb_is_restarted_by_its_supervisor_and_keeps_its_data(tmp_path: Path) -> None:
    """FalkorDB 4.16 sometimes deadlocks its main thread on the first graph write: it answers
    nothing, PING included, and its process runs on. Frozen here for good (SIGSTOP) after a memory
    was written: the supervisor restarts it after its liveness checks go unanswered, and schema
    creation that waited meanwhile succeeds on the restarted store, which still holds the memory.
    A server that answers is left alone."""
    proc, url = embedded_falkordb(tmp_path)
    proc.live_every, proc.live_misses = 0.2, 3
    await proc.start()
    try:
        address = urlparse(url)
        host, port, password = address.hostname or "", address.port or 0, address.password
        writer = FalkorDBGraphStore(host, port, password, timeout=5)
        user = unique()
        now = datetime.now(UTC)
        memory = c.Memory(
            id=str(uuid.uuid4()), user_id=user, app="t", text="I live in Lisbon.",
            entities=["Lisbon"], entity_kinds={"Lisbon": "place"},
            relations=[c.Relation(subject="User", type="LIVES_IN", object="Lisbon")],
            created_at=now, updated_at=now, content_hash="h", request_id="r",
        )  # fmt: skip
        await writer.ensure_schema()
        await writer.add_memory(memory)
        await writer.close()
        await asyncio.sleep(2)  # ten liveness checks, all answered
        assert proc.restarts == 0
        frozen = proc.pid
        assert frozen is not None
        os.kill(frozen, signal.SIGSTOP)
        waiting = FalkorDBGraphStore(host, port, password, timeout=1, schema_tries=10)
        try:
            await waiting.ensure_schema()  # asked until the restarted store answers
            assert proc.restarts == 1 and proc.pid != frozen and proc.running
            assert not pid_alive(frozen)
            assert {n.entity for n in await waiting.neighbours(user, "User")} == {"Lisbon"}
        finally:
            await waiting.close()
    finally:
        await proc.stop()


async def test_a_falkordb_that_loads_a_large_store_is_waited_for_not_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At a start FalkorDB replays the graph writes in its append-only file one query at a time and
    answers `-LOADING` meanwhile: 24 s for 10,000 memories' writes, once. That is waited for
    however long it takes (here far past the start-up timeout and the liveness misses), the
    store comes back whole, and the append-only file is compacted as it grows."""
    proc, url = await start_embedded(embedded_falkordb, tmp_path)
    address = urlparse(url)
    # A query that never answers (FalkorDB's rare deadlock on a first write) fails in a minute, not on
    # the suite's timeout.
    client = redis.asyncio.Redis(port=address.port or 0, password=address.password, socket_timeout=60)
    try:
        writes = 0

        async def write(batches: int) -> None:
            nonlocal writes
            for _ in range(batches):
                pipe = client.pipeline(transaction=False)
                for _ in range(1000):
                    query = f"CREATE (:Note {{n: {writes}, text: 'User had ramen with Anna in Lisbon.'}})"
                    pipe.execute_command("GRAPH.QUERY", "loading", query)
                    writes += 1
                await pipe.execute()

        await write(10)  # past the 1 MB at which the file is first compacted into a snapshot
        for _ in range(100):
            if int((await client.info("persistence"))["aof_rewrites"]) >= 1:
                break
            await asyncio.sleep(0.1)
        assert int((await client.info("persistence"))["aof_rewrites"]) >= 1
        await client.config_set("auto-aof-rewrite-percentage", 0)  # from here on: a slow replay
        await write(24)  # about 1.3 s to replay on a 2-core machine
        assert unreplayed(tmp_path) > 2_000_000
    finally:
        await client.aclose()
        await proc.stop()
    # Far less than the replay: it counts only silence (a busy machine may take a while to exec it).
    proc.start_timeout, proc.live_every, proc.live_misses = 0.5, 0.1, 2
    with caplog.at_level(logging.WARNING, logger="openmemory_core.servers"):
        await proc.start()
    client = redis.asyncio.Redis(port=address.port or 0, password=address.password, socket_timeout=60)
    try:
        assert "falkordb is loading its store" in caplog.text  # longer than the start-up timeout
        assert proc.restarts == 0
        counted = await client.execute_command("GRAPH.QUERY", "loading", "MATCH (n:Note) RETURN count(n)")
        assert counted[1][0][0] == writes == 34_000
        # A long replay is compacted at once (its increments far outgrow its snapshot: the growth
        # rule, back on after the restart), so only the first start is slow; the next reads a snapshot.
        # So is a store an older version wrote without compaction.
        for _ in range(100):
            if unreplayed(tmp_path) < 100_000:
                break
            await asyncio.sleep(0.1)
        assert unreplayed(tmp_path) < 100_000
    finally:
        await client.aclose()
        await proc.stop()


def unreplayed(data_dir: Path) -> int:
    """Bytes of graph writes a start would replay one query at a time (the append-only file's
    increments, not its snapshot)."""
    return sum(f.stat().st_size for f in (data_dir / "graph" / "appendonlydir").glob("*.incr.aof"))


def test_one_process_per_data_dir(tmp_path: Path) -> None:
    with (
        data_dir_lock(tmp_path),
        pytest.raises(ConfigurationError, match="another OpenMemory"),
        data_dir_lock(tmp_path),
    ):
        pass
    with data_dir_lock(tmp_path):  # released
        pass


async def test_the_embedded_nats_server_takes_only_its_generated_credentials(tmp_path: Path) -> None:
    proc, url = embedded_nats(tmp_path)
    config = tmp_path / "run" / "nats-server.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    parts = urlsplit(url)
    assert parts.username == "openmemory" and parts.password and parts.password in config.read_text()
    await proc.start()
    try:
        assert parts.password not in " ".join(proc.argv)
        for refused in (f"nats://127.0.0.1:{parts.port}", f"nats://openmemory:guess@127.0.0.1:{parts.port}"):
            with pytest.raises(Unavailable, match="refused the credentials") as caught:
                await asyncio.wait_for(Bus.connect(refused, "t", partitions=1), 10)
            assert "guess" not in caught.value.message  # a password is never in a message
        bus = await Bus.connect(url, "t", partitions=1)
        await bus.close()
    finally:
        await proc.stop()
    _, again = embedded_nats(tmp_path)  # generated once: the next start keeps the password
    assert urlsplit(again).password == parts.password


def test_the_embedded_nats_server_syncs_every_write_also_in_an_older_data_dir(tmp_path: Path) -> None:
    """JetStream's default syncs to disk every two minutes, so a power cut could lose adds already
    answered "accepted". The embedded server syncs each write, and a data dir whose config an older
    version wrote (its password and nothing else) gets the setting with its password kept. Asked of
    the server itself: its /varz, on a monitoring port added for this test only."""
    config = tmp_path / "run" / "nats-server.conf"
    config.parent.mkdir(mode=0o700)
    config.write_text('authorization {\n  user: "openmemory"\n  password: "older-secret"\n}\n')
    proc, url = embedded_nats(tmp_path)
    assert urlsplit(url).password == "older-secret"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        monitor = free.getsockname()[1]
    server = subprocess.Popen([*proc.argv, "-m", str(monitor)], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/varz", timeout=5) as answer:
                    varz = json.load(answer)
                break
            time.sleep(0.1)
        else:
            server.kill()
            said = server.communicate()[1].decode(errors="replace")
            raise AssertionError(f"nats-server never answered: {said}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert varz["jetstream"]["config"]["sync_always"] is True
    assert varz["jetstream"]["config"]["store_dir"].startswith(str(tmp_path / "nats"))
    written = config.stat()
    embedded_nats(tmp_path)  # the same settings again: the file is left as it is, not written anew
    assert (config.stat().st_ino, config.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert "older-secret" in config.read_text() and config.read_text().count("sync_interval: always") == 1


async def test_the_embedded_falkordb_takes_only_its_password(tmp_path: Path) -> None:
    proc, url = embedded_falkordb(tmp_path)
    config = tmp_path / "run" / "falkordb.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    password = urlsplit(url).password
    assert password and f"requirepass {password}" in config.read_text()
    await proc.start()
    try:
        assert password not in " ".join(proc.argv)
        without = open_graph_store(f"falkordb://127.0.0.1:{urlsplit(url).port}")
        assert not await without.ping()
        await without.close()
        store = open_graph_store(url)
        assert await store.ping()
        await store.close()
    finally:
        await proc.stop()
    _, again = embedded_falkordb(tmp_path)
    assert urlsplit(again).password == password


def test_make_private_tightens_what_an_older_version_left(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "vectors" / "segment").mkdir(parents=True)
    (data / "vectors" / "segment" / "points.dat").write_text("memory text")
    (data / "first-api-key").write_text("om_x_y\n")
    (tmp_path / "elsewhere").write_text("not ours to change")
    (data / "link").symlink_to(tmp_path / "elsewhere")
    for path in (data, data / "vectors", data / "vectors" / "segment"):
        path.chmod(0o755)
    for path in (data / "vectors" / "segment" / "points.dat", data / "first-api-key", tmp_path / "elsewhere"):
        path.chmod(0o644)
    before = os.umask(0o022)
    try:
        make_private(data)
        assert os.umask(0o022) == 0o077  # and so is what this process writes from now on
    finally:
        os.umask(before)
    for path in (data, data / "vectors", data / "vectors" / "segment"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (data / "vectors" / "segment" / "points.dat", data / "first-api-key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "elsewhere").stat().st_mode) == 0o644  # a link is not followed


async def test_a_server_that_will_not_start_says_why_in_our_own_log(tmp_path: Path) -> None:
    """A crash-looping pod loses the server's log file: the reason must be in the error itself."""

    async def never() -> Health:
        return Health.SILENT

    code = "import sys; print('fatal: the module needs libgomp.so.1'); sys.exit(3)"
    server = SupervisedProcess("graph", [sys.executable, "-c", code], never, tmp_path / "graph.log")
    with pytest.raises(Unavailable) as refused:
        await server.start()
    assert "exited with 3" in refused.value.message
    assert "fatal: the module needs libgomp.so.1" in refused.value.message


@pytest.mark.parametrize("make", [embedded_nats, embedded_falkordb], ids=["nats-server", "falkordb"])
async def test_a_server_whose_port_was_taken_meanwhile_starts_on_another(tmp_path: Path, make: Any) -> None:
    """`free_port` picks a port that is free then, not reserved: another socket can bind it before
    the server does. The server exits saying so, and it is made again on another port."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        first, first_url = make(tmp_path, taken)
        kept: list[SupervisedProcess] = []
        proc, url = await start_on_free_port(first, first_url, functools.partial(make, tmp_path), keep=kept)
        try:
            assert urlsplit(url).port != taken and urlsplit(first_url).port == taken
            assert kept == [first, proc] and proc.running and not first.running
            assert await proc.health() is Health.READY
            await first.stop()  # the failed attempt's stop leaves the running server's record
            assert proc.record is not None and proc.record.exists()
        finally:
            await proc.stop()
        assert not proc.record.exists()


async def test_a_server_that_fails_for_another_reason_is_not_started_again(tmp_path: Path) -> None:
    async def never() -> Health:
        return Health.SILENT

    code = "import sys; print('fatal: no space left on device'); sys.exit(3)"
    log_path = tmp_path / "graph.log"
    # an earlier run's port trouble in the same log says nothing about this start
    log_path.write_text("Could not create server TCP listening socket *:6379: bind: Address already in use\n")
    server = SupervisedProcess("graph", [sys.executable, "-c", code], never, log_path)
    remade: list[str] = []

    def remake() -> tuple[SupervisedProcess, str]:
        remade.append("again")
        return server, "unused"

    with pytest.raises(Unavailable, match="no space left"):
        await start_on_free_port(server, "unused", remake)
    assert remade == []


async def test_a_port_taken_at_every_attempt_is_refused_saying_so(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        made: list[SupervisedProcess] = []

        def on_the_taken_port() -> tuple[SupervisedProcess, str]:
            proc, url = embedded_nats(tmp_path, taken)
            made.append(proc)
            return proc, url

        with pytest.raises(Unavailable, match="address already in use"):
            await start_on_free_port(*on_the_taken_port(), on_the_taken_port, attempts=2)
        assert len(made) == 2 and not any(p.running for p in made)


def test_free_ports_hold_each_port_until_all_are_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's kernel rarely hands back a port just freed (0 of 20,000 tries here), so the
    real sockets below cannot show what `free_ports` guards against; a kernel that always hands out
    the lowest port not bound can: only sockets held until all are chosen give different ports."""
    bound: set[int] = set()

    class Socket:
        def __init__(self, *_: object) -> None:
            self.port = 0

        def __enter__(self) -> "Socket":
            return self

        def __exit__(self, *_: object) -> None:
            bound.discard(self.port)

        def bind(self, address: tuple[str, int]) -> None:
            self.port = min(p for p in range(40000, 40100) if p not in bound)
            bound.add(self.port)

        def getsockname(self) -> tuple[str, int]:
            return "127.0.0.1", self.port

    monkeypatch.setattr(servers.socket, "socket", Socket)
    assert free_ports(3) == [40000, 40001, 40002] and not bound  # all released once chosen
    assert [free_port(), free_port()] == [40000, 40000]  # one at a time: the same port twice


def test_free_ports_are_different_from_each_other_and_free() -> None:
    for _ in range(50):  # one after the other, a port asked for alone can come back twice
        ports = free_ports(4)
        assert len(ports) == len(set(ports)) == 4
    with contextlib.ExitStack() as held:
        for port in ports:  # each can be listened on once they are handed out
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", port))
