"""Nothing is lost and nothing is applied twice: a burst of concurrent adds through MCP while the
ingest process is killed with SIGKILL, while it is stopped with SIGTERM, while nats-server is
stopped and started, while nats-server is killed with SIGKILL (its supervisor starts it again), and
while the graph store is frozen for 10 s. Afterwards every add is present exactly once, which is
checked on the events stream (one ADD event per text and per request id) as well as in the store,
and each fault is shown to have hit while the burst was running. A command published twice, or
redelivered after its worker died before acking it, adds one memory and one event. Real processes
on loopback; each scenario bounded in time."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from e2e_support import Client, ToolFailed, adds_by_request, adds_by_text, mcp_client, stored_events
from mcp.shared.exceptions import MCPError

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.keys import create_key
from openmemory_core.servers import SupervisedProcess, embedded_falkordb, embedded_nats, start_embedded
from openmemory_core.stores import open_graph_store
from openmemory_testing import RunningSystem, eventually, start_system, stop_all, unique

USERS = 20
ADDS_PER_USER = 100  # 2,000 adds per scenario
# Each scenario fails on its own bounds first (the burst, the wait for every add), with what the
# servers logged; this is the suite's guard above them. JetStream syncs each write, so the pace
# follows the disk: 2-3 times slower at 20 ms a sync than here (0.2 ms).
pytestmark = pytest.mark.timeout(540)


@dataclass
class Cluster:
    nats: SupervisedProcess
    nats_url: str
    graph: SupervisedProcess
    graph_url: str
    gateway: RunningSystem
    workers: RunningSystem
    env: dict[str, str]
    root: Path
    key_while_up: str = ""
    bursts: list[Burst] = field(default_factory=list)

    def key(self, user: str) -> str:
        return self.gateway.cli("keys", "create", "--user", user).stdout.strip()

    async def keys(self, users: list[str]) -> dict[str, str]:
        """A key for each user, made on the bus (the CLI takes a second a key)."""
        bus = await self.bus()
        try:
            bucket = await bus.keys_bucket()
            return {user: (await create_key(bucket, user))[0] for user in users}
        finally:
            await bus.close()

    def restart_workers(self) -> None:
        self.workers = start_system(self.root / "workers", "ingest,search", self.env)

    async def bus(self) -> Bus:
        return await Bus.connect(self.nats_url, "crash-test", c.DEFAULT_PARTITIONS)


@pytest_asyncio.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    root = tmp_path_factory.mktemp("crash")
    nats, nats_url = await start_embedded(embedded_nats, root / "nats")
    graph, graph_url = await start_embedded(embedded_falkordb, root / "graph")
    env = {
        "OPENMEMORY_NATS_URL": nats_url,
        "OPENMEMORY_GRAPH_URL": graph_url,
        "OPENMEMORY_GATEWAY_ADD_WAIT_SECONDS": "0",  # answer "accepted" once the command is durable
        "OPENMEMORY_INGEST_ACK_WAIT_SECONDS": "5",  # a killed worker's command comes back quickly
        "OPENMEMORY_INGEST_MAX_BACKOFF_SECONDS": "2",
    }
    workers = start_system(root / "workers", "ingest,search", env)
    gateway = start_system(root / "gateway", "gateway", env)
    built = Cluster(nats, nats_url, graph, graph_url, gateway, workers, env, root)
    try:
        yield built
    finally:
        stop_all([built.gateway, built.workers])
        await graph.stop()
        await nats.stop()


@pytest_asyncio.fixture(autouse=True)
async def no_burst_outlives_its_test(cluster: Cluster) -> AsyncIterator[None]:
    """A scenario that fails mid-burst stops its clients: left running, they would load the next
    scenario and fail it too."""
    yield
    for burst in cluster.bursts:
        if burst.running is None:
            continue
        burst.running.cancel()  # nothing if it is done
        await asyncio.wait({burst.running}, timeout=30)
        if burst.running.done() and not burst.running.cancelled():
            burst.running.exception()  # its failure was the scenario's; retrieved, not logged again
    cluster.bursts.clear()


@dataclass
class Burst:
    """What the clients sent and what they were told."""

    keys: dict[str, str]  # user -> API key
    total: int  # adds to make
    cluster: Cluster  # where it runs, for the servers' logs
    sent: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> {text sent: text stored}
    request_ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # text -> ids
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # text -> tries
    answered: list[float] = field(default_factory=list)  # when each add was answered "accepted"
    running: asyncio.Task[None] | None = None
    started: float = 0.0  # on the loop's clock

    async def until_answered(self, share: float) -> None:
        """Wait until this share of the adds has been answered (the burst is under way). A fixed
        sleep proved nothing: on a busy machine the burst had not sent its first add at 4 s."""

        async def far_enough() -> bool:
            assert self.running is not None
            if self.running.done():
                self.running.result()  # a failed burst fails here, not after a 60 s wait
            return len(self.answered) >= share * self.total

        await eventually(far_enough, timeout=120, interval=0.05)

    async def finished(self, within: float = 240) -> Burst:
        """The burst's end, at most `within` seconds after it started. Past that it fails saying
        where it stands and what the servers logged last, not on the suite's timeout, which says
        nothing about why."""
        assert self.running is not None
        left = self.started + within - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(asyncio.shield(self.running), max(left, 1.0))
        except TimeoutError:
            self.running.cancel()
            raise AssertionError(
                f"the burst was still running {within:.0f}s after it started: {self.standing()}"
            ) from None
        return self

    def standing(self) -> str:
        retried = {text: n for text, n in self.attempts.items() if n > 1}
        tails = {
            "gateway": self.cluster.gateway.log(),
            "ingest and search": self.cluster.workers.log(),
            "nats-server": self.cluster.nats.log_path.read_text(errors="replace"),
        }
        return (
            f"{len(self.answered)} of {self.total} adds answered, {len(retried)} texts sent more than "
            f"once (at most {max(retried.values(), default=1)} times)\n"
            + "\n".join(f"--- the end of the {name}'s log:\n{text[-3000:]}" for name, text in tails.items())
        )

    def assert_running_at(self, moment: float) -> None:
        """The fault hit mid-burst: some adds were answered before it, and some after."""
        before = sum(1 for t in self.answered if t < moment)
        after = len(self.answered) - before
        assert before > 0 and after > 0, f"the fault hit outside the burst ({before} before, {after} after)"


async def add_with_retries(client: Client, text: str, infer: bool, burst: Burst) -> None:
    """What a client does with a write that failed: send it again (a bus restart, a refusal)."""
    for attempt in range(60):
        burst.attempts[text] += 1
        try:
            answer = await client.call("add_memories", text=text, infer=infer)
        except (ToolFailed, MCPError):
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
            continue
        burst.request_ids[text].append(answer["request_id"])
        burst.answered.append(asyncio.get_running_loop().time())
        return
    raise AssertionError(f"could not add {text!r}")


def verbatim(tag: str, user: str, i: int) -> tuple[str, str]:
    return f"{tag} note {i} of {user}", f"{tag} note {i} of {user}"


async def start_burst(
    cluster: Cluster,
    tag: str,
    texts_of: Callable[[str, str, int], tuple[str, str]] = verbatim,
    infer: bool = False,
    adds_per_user: int = ADDS_PER_USER,
) -> Burst:
    """USERS clients adding `adds_per_user` memories each, all at once (their keys made first)."""
    users = [unique(tag) for _ in range(USERS)]
    done = Burst(await cluster.keys(users), USERS * adds_per_user, cluster)

    async def one_user(user: str) -> None:
        pairs = dict(texts_of(tag, user, i) for i in range(adds_per_user))
        done.sent[user] = pairs
        texts = list(pairs)
        for start in range(0, len(texts), 10):
            for attempt in range(30):
                try:  # a session can break while the bus restarts: open another, send the chunk again
                    async with mcp_client(cluster.gateway.mcp_url, done.keys[user]) as client:
                        await asyncio.gather(
                            *(add_with_retries(client, t, infer, done) for t in texts[start : start + 10])
                        )
                    break
                except Exception:
                    if attempt == 29:
                        raise
                    await asyncio.sleep(0.5)

    async def every_user() -> None:
        await asyncio.gather(*(one_user(user) for user in users))

    done.started = asyncio.get_running_loop().time()
    done.running = asyncio.create_task(every_user())
    cluster.bursts.append(done)
    return done


async def all_present_once(
    cluster: Cluster, done: Burst, timeout: float = 180
) -> dict[str, list[c.MemoryEvent]]:
    """Every add is stored once (as the store lists it) and was added once (as the events stream
    tells: one ADD event per text, and per request id); returns the users' events."""
    deadline = asyncio.get_running_loop().time() + timeout
    missing: dict[str, int] = {}
    while asyncio.get_running_loop().time() < deadline:
        missing = {}
        for user, pairs in done.sent.items():
            async with mcp_client(cluster.gateway.mcp_url, done.keys[user]) as client:
                try:
                    stored = await client.texts()
                except ToolFailed:  # search is restarting
                    missing[user] = len(pairs)
                    continue
            assert len(stored) == len(set(stored)), f"duplicates for {user}"
            assert set(stored) <= set(pairs.values()), f"unexpected memories for {user}"
            if len(stored) < len(pairs):
                missing[user] = len(pairs) - len(stored)
        if not missing:
            break
        await asyncio.sleep(2)
    else:
        raise AssertionError(f"still missing after {timeout}s: {missing}\n{done.standing()}")
    events = await stored_events(cluster.nats_url, done.sent)
    for user, pairs in done.sent.items():
        by_text, by_request = adds_by_text(events[user]), adds_by_request(events[user])
        assert by_text == {stored: 1 for stored in pairs.values()}, f"ADD events per text for {user}"
        assert set(by_request.values()) == {1}, f"a request added twice for {user}"
        for sent in pairs:
            # A text sent once and accepted once was added by that very request. (A text sent again
            # after a failure may have been added by the attempt whose answer was lost.)
            if done.attempts[sent] == 1:
                assert by_request[done.request_ids[sent][0]] == 1, (user, sent)
    return events


async def test_sigkill_of_ingest_during_a_burst_loses_nothing(cluster: Cluster) -> None:
    adding = await start_burst(cluster, "kill")
    await adding.until_answered(0.1)  # mid-burst: commands stored, some applied, one in hand
    fault = asyncio.get_running_loop().time()
    os.kill(cluster.workers.process.pid, signal.SIGKILL)
    cluster.workers.process.wait()
    await asyncio.sleep(1)
    cluster.restart_workers()
    done = await adding.finished()
    done.assert_running_at(fault)
    await all_present_once(cluster, done)


async def test_a_graceful_stop_of_ingest_during_a_burst_is_prompt_and_loses_nothing(cluster: Cluster) -> None:
    """SIGTERM (what Kubernetes sends before a pod goes): ingest finishes the command in hand, stops
    pulling, and exits cleanly well within its grace period; a new process takes the rest."""
    adding = await start_burst(cluster, "term")
    await adding.until_answered(0.1)
    started = asyncio.get_running_loop().time()
    code = await asyncio.to_thread(cluster.workers.stop, 20)
    assert code == 0, cluster.workers.log()[-2000:]
    assert asyncio.get_running_loop().time() - started < 15
    cluster.restart_workers()
    done = await adding.finished()
    done.assert_running_at(started)
    await all_present_once(cluster, done)


async def test_a_nats_restart_during_a_burst_loses_nothing(cluster: Cluster) -> None:
    cluster.key_while_up = cluster.key(unique("bus"))
    adding = await start_burst(cluster, "bus")
    await adding.until_answered(0.1)
    fault = asyncio.get_running_loop().time()
    await cluster.nats.stop()
    async with httpx.AsyncClient(timeout=30) as http:  # no bus: a clear, retryable refusal
        down = await http.post(
            cluster.gateway.mcp_url, json={}, headers={"Authorization": f"Bearer {cluster.key_while_up}"}
        )
    assert down.status_code == 503 and "retry" in down.text, down.text
    await asyncio.sleep(1)
    await cluster.nats.start()
    done = await adding.finished()
    done.assert_running_at(fault)
    await all_present_once(cluster, done)


async def test_a_sigkill_of_nats_server_during_a_burst_loses_nothing(cluster: Cluster) -> None:
    """No graceful shutdown: the server dies with whatever it held in memory, its supervisor starts
    it again on the same store, and every add a client was told is accepted is there once."""
    adding = await start_burst(cluster, "natskill", adds_per_user=30)  # the other bursts are enough load
    await adding.until_answered(0.2)
    restarts, pid = cluster.nats.restarts, cluster.nats.pid
    assert pid is not None
    fault = asyncio.get_running_loop().time()
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> bool:
        return cluster.nats.restarts > restarts and cluster.nats.running

    try:
        await eventually(restarted, timeout=60)
    except AssertionError:
        raise AssertionError(f"nats-server was not started again: {adding.standing()}") from None
    assert cluster.nats.pid != pid
    done = await adding.finished()
    done.assert_running_at(fault)
    await all_present_once(cluster, done)


def with_relations(tag: str, user: str, i: int) -> tuple[str, str]:
    """A text from which ingest makes entities and relations (as its local extractor rewrites it)."""
    said = f"{tag} note {i} of {user}: my brother Marco plays tennis with Ana."
    return said, said.replace("my brother", "User's brother")


async def test_a_frozen_graph_store_delays_adds_and_loses_nothing(cluster: Cluster) -> None:
    adding = await start_burst(cluster, "graph", with_relations, infer=True)
    await adding.until_answered(0.1)
    pid = cluster.graph.pid
    assert pid is not None
    fault = asyncio.get_running_loop().time()
    os.kill(pid, signal.SIGSTOP)  # the store stops answering, as a hung or partitioned one does
    try:
        await asyncio.sleep(10)
    finally:
        os.kill(pid, signal.SIGCONT)
    done = await adding.finished()
    done.assert_running_at(fault)
    events = await all_present_once(cluster, done)
    # The graph holds what ingest said each memory has: its entities and its relations.
    graph = open_graph_store(cluster.graph_url)
    try:
        for user in done.sent:
            added = [e.after for e in events[user] if e.change is c.ChangeKind.ADD and e.after]
            relations: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
            for triple in await graph.relations_of_user(user, limit=10 * len(added)):
                relations[triple.memory_id].add((triple.subject, triple.relation, triple.object))
            for memory in added:
                assert memory.entities and memory.relations, memory
                assert await graph.entities_of(user, memory.id) == sorted(memory.entities), memory.id
                assert relations[memory.id] == {(r.subject, r.type, r.object) for r in memory.relations}
    finally:
        await graph.close()


# ---- one command, twice --------------------------------------------------------------------------


async def _results_of(bus: Bus, request_id: str) -> list[c.CommandResult]:
    """Every result ingest publishes for a request, from now on (one per application)."""
    heard: list[c.CommandResult] = []

    async def on_result(msg: object) -> None:
        heard.append(c.CommandResult.model_validate_json(msg.data))  # type: ignore[attr-defined]

    await bus.nc.subscribe(c.result_subject(request_id), cb=on_result)
    return heard


async def _applied(bus: Bus, user: str) -> None:
    """Wait until every command of the user published so far is applied: a user's commands are
    applied in order, so once a last one is, all before it are."""
    marker = c.AddCommand(user_id=user, app="test", text=f"marker {unique()}", infer=False)
    async with bus.result_waiter(marker.request_id) as result:
        assert await bus.publish_command(marker)
        assert (await asyncio.wait_for(result, 90)).ok


async def _stored(cluster: Cluster, user: str) -> list[str]:
    key = (await cluster.keys([user]))[user]
    async with mcp_client(cluster.gateway.mcp_url, key) as client:
        return [t for t in await client.texts() if not t.startswith("marker ")]


async def test_a_command_published_twice_adds_one_memory_and_one_event(cluster: Cluster) -> None:
    user = unique("twice")
    command = c.AddCommand(user_id=user, app="test", text=f"Said twice by {user}.", infer=False)
    bus = await cluster.bus()
    try:
        heard = await _results_of(bus, command.request_id)
        # A publisher that retries (its ack was lost): JetStream keeps one copy.
        assert await bus.publish_command(command) is True
        assert await bus.publish_command(command) is False
        await _applied(bus, user)
        assert len(heard) == 1, heard
        # A second copy past JetStream's de-duplication (a dead letter sent again gets a new message
        # id): ingest applies it again, and that must change nothing.
        envelope = c.CommandEnvelope(command=command).model_dump_json().encode()
        subject = c.command_subject(user, c.DEFAULT_PARTITIONS)
        await bus.js.publish(subject, envelope, headers={"Nats-Msg-Id": f"{command.request_id}:again"})
        await _applied(bus, user)
    finally:
        await bus.close()
    memory_id = c.memory_id_for(command.request_id, 0)
    assert [[(r.id, r.event) for r in result.results] for result in heard] == [
        [(memory_id, c.ChangeKind.ADD)]
    ] * 2
    assert await _stored(cluster, user) == [command.text]
    events = (await stored_events(cluster.nats_url, [user]))[user]
    assert adds_by_request(events)[command.request_id] == 1
    assert [e.change for e in events if e.request_id == command.request_id] == [c.ChangeKind.ADD]


async def test_a_command_in_hand_when_ingest_dies_is_redelivered_and_applied_once(cluster: Cluster) -> None:
    """The worker writes the vectors, hangs on a frozen graph store, and is killed before it acks:
    after the ack wait the command goes to the next worker, which applies it over the first one's
    writes, once."""
    user = unique("redelivered")
    command = c.AddCommand(user_id=user, app="test", text=f"Redelivered for {user}.", infer=False)
    durable = c.ingest_durable(c.partition_of(user, c.DEFAULT_PARTITIONS))
    graph_pid = cluster.graph.pid
    assert graph_pid is not None
    bus = await cluster.bus()
    try:
        heard = await _results_of(bus, command.request_id)
        os.kill(graph_pid, signal.SIGSTOP)
        try:
            assert await bus.publish_command(command)

            async def in_hand() -> bool:
                info = await bus.js.consumer_info(c.COMMANDS_STREAM, durable)
                return bool(info.num_ack_pending == 1 and info.num_pending == 0)

            await eventually(in_hand, timeout=20)
            await asyncio.sleep(2)  # extracted, embedded, vectors written; waiting on the graph
            os.kill(cluster.workers.process.pid, signal.SIGKILL)
            cluster.workers.process.wait()
        finally:
            os.kill(graph_pid, signal.SIGCONT)
        assert heard == []  # the first worker never finished it
        cluster.restart_workers()
        await _applied(bus, user)
        info = await bus.js.consumer_info(c.COMMANDS_STREAM, durable)
    finally:
        await bus.close()
    assert info.num_ack_pending == 0 and info.num_pending == 0
    memory_id = c.memory_id_for(command.request_id, 0)
    assert [[(r.id, r.event) for r in result.results] for result in heard] == [
        [(memory_id, c.ChangeKind.ADD)]
    ]
    assert await _stored(cluster, user) == [command.text]
    events = (await stored_events(cluster.nats_url, [user]))[user]
    assert [e.change for e in events if e.request_id == command.request_id] == [c.ChangeKind.ADD]
