"""The system on a three-node NATS cluster (replicas 3) keeps every accepted add, once and in order,
while the stream leader and then a second node are SIGKILLed in the middle of a burst.

Processes: three nats-servers (JetStream, routes with credentials), two gateways, one ingest worker
(ingest and search together) and admin, each an `openmemory run --target ...`. The worker keeps its
vectors in an embedded store, since no Qdrant server can run here (the vector store is not what this
test is about); one worker, because its store is where ingest sees that a text is already stored,
and that is what makes a client's retry harmless (below). Exactly-once and order are read from the
events stream, the system's audit log, which lives in the cluster under test.

The burst: `ADDS` MCP adds from `USERS` users at once (each user's adds one after another, so their
order is defined), half of the users on each gateway. Each writer behaves like a real client: an add
refused while the cluster elects a leader is sent again after a short pause, for up to
`RETRY_SECONDS`; an add still refused then is lost, and the test fails. Searches go on throughout, on
both gateways; one may fail only around a kill, and none waits `MAX_SEARCH_STALL` for an answer. The
figures (refused attempts, retries, error rates, longest stall, when each failed search was sent) are
printed: run with `-s` to see them.

A retry is a new request, with a new request id. If the refused attempt had in fact been stored (the
refusal came after JetStream stored it: an ack lost, or the gateway failing after the publish), the
text reaches ingest twice. Ingest turns an identical text of the same user into NONE (no event), so
the memory is stored once. Hence the check counts ADD events per *text*: each accepted add's text has
exactly one ADD event. When that event carries another request id than the accepted attempt, the
earlier refused attempt is the one that was stored, and the accepted one ended NONE on that memory:
the test counts these and checks the requests' records say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import nats.errors
import nats.js.errors
import pytest_asyncio
from e2e_support import mcp_client
from nats.aio.msg import Msg

from openmemory_core import contracts as c
from openmemory_core import requests
from openmemory_core.bus import Bus
from openmemory_core.errors import NotFound
from openmemory_core.keys import create_key
from openmemory_core.kv import Bucket
from openmemory_testing import RunningSystem, start_system, stop_all, unique
from openmemory_testing.servers import NatsCluster

ADDS = int(os.environ.get("OPENMEMORY_CLUSTER_TEST_ADDS", "2000"))
USERS = 20  # concurrent writers: what two cores serve without the test client starving the system
SEARCHERS = 2  # one per gateway, searching back to back
FIRST_FAULT, SECOND_FAULT = 0.25, 0.6  # share of the burst accepted when each node is killed
# How long a writer keeps sending a refused add again before giving it up. A SIGKILLed node leads some
# of the streams and buckets an add touches; each one's followers wait out raft's election timeout
# (seconds, longer on two loaded cores) before one of them leads: at 15 s, 1 run in 4 here gave up on
# 3-10 adds while the cluster was still electing (refused, never stored: availability, not loss).
RETRY_SECONDS = 45.0
CALL_SECONDS = 10.0  # one attempt's limit: the gateway gives up on JetStream's ack after 5 s
MAX_SEARCH_STALL = 30.0
# A search may fail only around a kill: sent from this long before it (in flight when the node died)
# to this long after. Every call's key and app checks read KV buckets from their stream's leader (a
# follower may not have a revocation yet), so while a killed leader's successor is elected (raft's
# election timeout, seconds, longer on two loaded cores) a call is refused as "retry shortly". How
# many searches fail then depends on how fast the searchers ask (a CI run: 6 of 49), so the test
# bounds when they fail and the longest time without an answer, not their share.
SEARCH_FAULT_WINDOW = (5.0, 20.0)
# An ack that JetStream does not confirm during an election leaves the command unacked: it comes back
# after the ack wait (60 s by default), and its partition (one command in flight) waits until then.
ACK_WAIT_SECONDS = 10
# After the burst, ingest works off what is stored, plus a few such waits: bounded, never open-ended.
DRAIN_SECONDS = 180.0

T = TypeVar("T")


@dataclass
class ClusterSystem:
    nats: NatsCluster
    gateways: list[RunningSystem]
    worker: RunningSystem
    admin: RunningSystem
    bus: Bus


@pytest_asyncio.fixture
async def system(tmp_path: Path, graph_url: str) -> AsyncIterator[ClusterSystem]:
    nats_cluster = NatsCluster(tmp_path / "nats")
    started: list[RunningSystem] = []
    bus: Bus | None = None
    try:
        await nats_cluster.start()
        env = {
            "OPENMEMORY_NATS_URL": nats_cluster.url,
            "OPENMEMORY_NATS_REPLICAS": "3",
            "OPENMEMORY_GRAPH_URL": graph_url,
            "OPENMEMORY_GATEWAY_ADD_WAIT_SECONDS": "0",  # answer on JetStream's ack: a pure burst
            "OPENMEMORY_INGEST_ACK_WAIT_SECONDS": str(ACK_WAIT_SECONDS),
        }
        # The topology first (replicas 3), so the processes starting at once do not race to make it.
        bus = await Bus.connect(nats_cluster.url, "cluster-test", c.DEFAULT_PARTITIONS, replicas=3)
        plan = [("gateway1", "gateway"), ("gateway2", "gateway"), ("worker", "ingest,search"),
                ("admin", "admin")]  # fmt: skip
        with ThreadPoolExecutor(len(plan)) as pool:
            futures = [pool.submit(start_system, tmp_path / name, target, env) for name, target in plan]
            for future in futures:
                try:
                    started.append(future.result())
                except RuntimeError:
                    for other in futures:
                        if other.exception() is None:
                            started.append(other.result())
                    raise
        gateways, worker, admin = started[:2], started[2], started[3]
        yield ClusterSystem(nats_cluster, gateways, worker, admin, bus)
    finally:
        if bus is not None:
            await bus.close()
        stop_all([s for i, s in enumerate(started) if all(s is not t for t in started[:i])])
        nats_cluster.stop()


@dataclass
class Burst:
    """What the writers and searchers saw."""

    accepted: dict[str, dict[int, str]] = field(default_factory=dict)  # user → add index → request id
    lost: dict[str, list[int]] = field(default_factory=dict)  # adds still refused after RETRY_SECONDS
    attempts: int = 0
    refused: int = 0  # attempts that failed (each one then retried, or its add lost)
    retried_adds: int = 0  # adds accepted only on a second or later attempt
    longest_add: float = 0.0  # seconds from an add's first attempt to its acceptance
    reasons: Counter[str] = field(default_factory=Counter)  # why attempts were refused
    searches: int = 0
    search_errors: int = 0
    search_reasons: Counter[str] = field(default_factory=Counter)
    search_failures: list[tuple[float, float]] = field(default_factory=list)  # (started at, took) s
    longest_stall: float = 0.0  # seconds between two answered searches of one searcher
    done: bool = False

    @property
    def accepted_count(self) -> int:
        return sum(len(v) for v in self.accepted.values())

    @property
    def lost_count(self) -> int:
        return sum(len(v) for v in self.lost.values())


def text_of(user: str, index: int) -> str:
    return f"Cluster note {index} of {user}: the sample tray {index} holds reagent {index * 7}."


def reason(exc: BaseException) -> str:
    """A refusal's kind: its message without ids and numbers, cut short."""
    message = re.sub(r"[0-9a-f]{32}|\d+(\.\d+)?", "#", str(exc) or type(exc).__name__)
    return f"{type(exc).__name__}: {message}"[:120]


async def write(url: str, key: str, user: str, count: int, burst: Burst) -> None:
    """One user's adds, one after another, each sent again after a refusal (a short, growing pause)
    for up to RETRY_SECONDS. The next add starts only when this one is accepted or given up."""
    burst.accepted[user], burst.lost[user] = {}, []
    async with mcp_client(url, key) as client:
        for index in range(count):
            first, pause = time.monotonic(), 0.2
            for attempt in range(1_000):
                burst.attempts += 1
                try:
                    answer = await asyncio.wait_for(
                        client.call("add_memories", text=text_of(user, index), infer=False), CALL_SECONDS
                    )
                except Exception as exc:  # refused or timed out while the cluster elects
                    burst.refused += 1
                    burst.reasons[reason(exc)] += 1
                    if time.monotonic() - first + pause > RETRY_SECONDS:
                        burst.lost[user].append(index)
                        break
                    await asyncio.sleep(pause)
                    pause = min(pause * 1.5, 1.0)
                    continue
                burst.accepted[user][index] = answer["request_id"]
                burst.retried_adds += attempt > 0
                burst.longest_add = max(burst.longest_add, time.monotonic() - first)
                break


async def search(url: str, key: str, burst: Burst, started: float) -> None:
    async with mcp_client(url, key) as client:
        last_answer = time.monotonic()
        while not burst.done:
            sent = time.monotonic()
            try:
                await asyncio.wait_for(client.call("search_memory", query="which reagent is in tray 3?"), 30)
                burst.searches += 1
                now = time.monotonic()
                burst.longest_stall = max(burst.longest_stall, now - last_answer)
                last_answer = now
            except Exception as exc:
                burst.search_errors += 1
                burst.search_reasons[reason(exc)] += 1
                burst.search_failures.append((round(sent - started, 1), round(time.monotonic() - sent, 1)))
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.05)
        burst.longest_stall = max(burst.longest_stall, time.monotonic() - last_answer)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def retried(read: Callable[[], Awaitable[T]], what: str) -> T:
    """`read()`, asked again while a node just back does not serve it yet."""
    for _attempt in range(40):
        try:
            return await read()
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
            await asyncio.sleep(0.5)
    raise AssertionError(f"{what} could not be read")


async def commands_waiting(bus: Bus) -> int:
    """Commands stored and not yet applied: the commands stream is a work queue, an acked command
    leaves it."""
    info = await retried(lambda: bus.js.stream_info(c.COMMANDS_STREAM), "the commands stream")
    return info.state.messages


async def test_accepted_adds_survive_killing_the_stream_leader_and_then_another_node(
    system: ClusterSystem,
) -> None:
    keys_kv = await system.bus.keys_bucket()
    users = [unique("cl") for _ in range(USERS)]
    keys = {u: (await create_key(keys_kv, u))[0] for u in users}
    per_user = [ADDS // USERS + (1 if i < ADDS % USERS else 0) for i in range(USERS)]
    urls = [g.mcp_url for g in system.gateways]
    burst = Burst()
    started = time.monotonic()
    writers = [
        asyncio.create_task(write(urls[i % 2], keys[u], u, per_user[i], burst)) for i, u in enumerate(users)
    ]
    searchers = [
        asyncio.create_task(search(urls[i % 2], keys[users[i]], burst, started)) for i in range(SEARCHERS)
    ]
    faults: list[Fault] = []
    advisories: Counter[str] = Counter()

    async def advised(msg: Msg) -> None:
        kind = ".".join(msg.subject.removeprefix("$JS.EVENT.ADVISORY.").split(".")[:2])
        if kind != "API":  # every JetStream API call has one
            advisories[kind] += 1
        if kind == "CONSUMER.MSG_TERMINATED":  # e.g. "Unacknowledged message was deleted"
            advisories[f"terminated: {msg.data.decode(errors='replace')[:300]}"] += 1

    watch = await system.bus.nc.subscribe("$JS.EVENT.ADVISORY.>", cb=advised)

    def running() -> int:
        return sum(not w.done() for w in writers)

    def fault(what: str) -> None:
        faults.append(Fault(what, burst.accepted_count, running(), round(time.monotonic() - started, 1)))

    try:
        # First fault: the OM_COMMANDS leader, a quarter into the burst.
        await until(lambda: burst.accepted_count >= ADDS * FIRST_FAULT, 120, "the first quarter")
        leader = await system.nats.stream_leader(c.COMMANDS_STREAM)
        system.nats.kill(leader)
        fault(f"leader {leader.name}")
        await asyncio.sleep(2)
        await system.nats.restart(leader)
        # Second fault, once the first node is back: another node, at 60 % of the adds or sooner
        # if writers are finishing (those refused through the election fall behind, the rest
        # finish early), so that a third of them are still writing when it hits.
        await until(
            lambda: burst.accepted_count >= ADDS * SECOND_FAULT or running() <= USERS // 3,
            120,
            "60% of the burst",
        )
        second = next(n for n in system.nats.nodes if n is not leader)
        system.nats.kill(second)
        fault(f"node {second.name}")
        await asyncio.sleep(2)
        await system.nats.restart(second)
        await asyncio.wait_for(asyncio.gather(*writers), 300)
    finally:
        burst.done = True
        for task in writers:
            task.cancel()
        await asyncio.gather(*searchers, *writers, return_exceptions=True)
    with contextlib.suppress(nats.errors.Error):
        await watch.unsubscribe()
    burst_seconds = time.monotonic() - started

    add_error_rate = burst.refused / max(1, burst.attempts)
    search_error_rate = burst.search_errors / max(1, burst.searches + burst.search_errors)
    print(
        f"\ncluster burst: {burst.accepted_count}/{ADDS} adds accepted in {burst_seconds:.1f}s, lost "
        f"{burst.lost_count}; attempts {burst.attempts}, refused {burst.refused} ({add_error_rate:.1%}), "
        f"adds retried {burst.retried_adds}, longest add {burst.longest_add:.1f}s\n"
        f"faults: {[(f.what, f.accepted_then, f.writers_running, f.at) for f in faults]} "
        f"(what, adds accepted then, writers running, s)\n"
        f"refusals: {dict(burst.reasons.most_common(5))}\n"
        f"searches {burst.searches}, errors {burst.search_errors} ({search_error_rate:.1%}), "
        f"longest stall {burst.longest_stall:.2f}s; why: {dict(burst.search_reasons.most_common(3))}\n"
        f"failed searches (sent at, took, s): {burst.search_failures}"
    )

    # Every add was accepted in the end (a refused one after retries), and the burst was still
    # running when each fault hit: a quarter of the writers or more busy, most adds still to come.
    # (Writers refused through the first election fall behind and the rest run on: one CI run
    # killed the second node at 70 % of the adds with 8 of 20 writers still writing.)
    assert burst.lost_count == 0, f"adds refused for {RETRY_SECONDS}s and given up: {burst.lost}"
    assert burst.accepted_count == ADDS
    assert len(faults) == 2
    for f in faults:
        assert f.accepted_then < ADDS * 0.95, f"the burst had nearly ended when {f.what} was killed"
        assert f.writers_running >= USERS // 4, f"most writers had finished when {f.what} was killed"

    # Searches were answered throughout.
    assert burst.searches > 0
    assert burst.longest_stall < MAX_SEARCH_STALL, "searches stalled through a fault"
    before, after = SEARCH_FAULT_WINDOW
    away = [(sent, took) for sent, took in burst.search_failures if not any(
        f.at - before <= sent <= f.at + after for f in faults
    )]  # fmt: skip
    assert not away, f"searches failed away from any fault (sent at, took, s): {away}"

    # Ingest has applied every stored command (the work queue is empty), then each user's events.
    backlog = await commands_waiting(system.bus)
    unapplied = await until_drained(system.bus, DRAIN_SECONDS)
    drained = time.monotonic() - started
    worker = worker_figures(system.worker.log_path)
    print(
        f"after the burst {backlog} commands waited; {'all applied' if not unapplied else 'NOT all applied'} "
        f"{drained - burst_seconds:.1f}s later ({drained:.1f}s in all); ingest: {worker}"
    )
    assert not unapplied, (
        f"ingest left commands unapplied after {DRAIN_SECONDS}s; per partition "
        f"(pending, unacked, redelivered): {unapplied}"
    )

    requests_kv = await retried(system.bus.requests_bucket, "the requests bucket")
    problems: dict[str, list[str]] = {}
    absorbed, absorbed_recorded = 0, 0
    for user, count in zip(users, per_user, strict=True):
        events = await retried(partial(system.bus.events_of, user), f"the events of {user}")
        found, absorbed_adds = check_exactly_once_in_order(user, count, burst, events)
        if found:
            problems[user] = found
            continue
        for index, memory_id in absorbed_adds:
            absorbed += 1
            absorbed_recorded += await check_absorbed(
                requests_kv, user, burst.accepted[user][index], memory_id
            )
    kinds = Counter(p.split(":")[0] for found in problems.values() for p in found)
    print(
        f"exactly once, in order: {USERS - len(problems)}/{USERS} users (wrong: {dict(kinds)}); adds "
        f"stored by a refused attempt, their accepted retry NONE: {absorbed} ({absorbed_recorded} with "
        f"the NONE on record)"
    )
    if problems:
        print(await diagnosis(system, advisories))
    assert not problems, "\n".join(f"{user}: {'; '.join(p)}" for user, p in problems.items())


@dataclass
class Fault:
    what: str
    accepted_then: int
    writers_running: int
    at: float  # seconds into the burst


async def until_drained(bus: Bus, timeout: float) -> dict[int, tuple[int, int, int]]:
    """Wait until ingest has applied every stored command. Returns {} then; else, after `timeout`,
    each partition's consumer (pending, waiting for an ack, redelivered), which shows where it stuck."""
    deadline = time.monotonic() + timeout
    while await commands_waiting(bus) > 0:
        if time.monotonic() > deadline:
            state = {}
            for partition in range(bus.partitions):
                durable = c.ingest_durable(partition)
                info = await retried(partial(bus.js.consumer_info, c.COMMANDS_STREAM, durable), durable)
                state[partition] = (
                    info.num_pending or 0,
                    info.num_ack_pending or 0,
                    info.num_redelivered or 0,
                )
            return state
        await asyncio.sleep(0.5)
    return {}


async def diagnosis(system: ClusterSystem, advisories: Counter[str]) -> str:
    """Where accepted commands went missing: the commands ingest set aside (the dead letters), the
    commands stream's sequences that ingest never applied (stored, then removed unapplied) against
    its last sequence (never stored, or a sequence given twice), the JetStream advisories seen, and
    what the nats-servers warned about."""
    info = await retried(lambda: system.bus.js.stream_info(c.COMMANDS_STREAM), "the commands stream")
    text = system.worker.log_path.read_text(errors="replace")
    applied = {int(n) for n in re.findall(r'"message": "applied \w+ #(\d+) ', text)}
    never = sorted(set(range(1, info.state.last_seq + 1)) - applied)
    warnings = [
        f"{node.name}: {line}"
        for node in system.nats.nodes
        for line in node.log.read_text(errors="replace").splitlines()
        if ("[WRN]" in line or "[ERR]" in line) and "Error trying to connect to route" not in line
    ]
    letters = await retried(system.bus.dead_letters, "the dead letters")
    return (
        f"dead letters: {len(letters)}: {[(seq, letter.error[:120]) for seq, letter in letters[:10]]}\n"
        f"commands stream: last sequence {info.state.last_seq}, {len(applied)} sequences applied, "
        f"never applied {len(never)}: {never[:20]}; state {info.state}\n"
        f"advisories: {dict(advisories)}\n"
        f"nats warnings ({len(warnings)}):\n" + "\n".join(warnings[-40:])
    )


def worker_figures(log: Path) -> str:
    """From the worker's log: commands whose handling failed (an ack refused while the bus elects:
    the command comes back after the ack wait, unless the ack had reached JetStream after all; a
    command is logged "applied" only once acked), fetches that failed, the request ids applied, and
    those applied twice (acked, yet delivered again; same ids, the events deduplicated)."""
    text = log.read_text(errors="replace")
    applied = Counter(re.findall(r'"message": "applied [^"]*", "request_id": "([0-9a-f]+)"', text))
    return (
        f"{text.count('handling a command failed')} handlings failed, "
        f"{text.count('fetching commands failed')} fetches failed, {len(applied)} commands applied, "
        f"{sum(n > 1 for n in applied.values())} of them twice"
    )


def check_exactly_once_in_order(
    user: str, count: int, burst: Burst, events: list[c.MemoryEvent]
) -> tuple[list[str], list[tuple[int, str]]]:
    """The user's ADD events (in stream order) hold each of the user's texts exactly once: every add
    was accepted, so every text must be there, and none twice (a refused attempt that was stored
    after all plus its accepted retry is one text sent twice: ingest must have stored it once). The
    texts come in the order they were added, and none was never sent.

    Returns what is wrong (empty when nothing), and the adds whose ADD event carries another request
    id than the accepted attempt (index, memory id): the text was stored by an earlier, refused
    attempt."""
    index_of = {text_of(user, i): i for i in range(count)}
    adds = [e for e in events if e.change == c.ChangeKind.ADD and e.after is not None]
    unknown = [e.after.text for e in adds if e.after is not None and e.after.text not in index_of]
    problems = [f"ADD events of texts that were never sent: {unknown[:3]}"] if unknown else []
    seen = [index_of[e.after.text] for e in adds if e.after is not None and e.after.text in index_of]
    twice = sorted(i for i, n in Counter(seen).items() if n > 1)
    if twice:
        problems.append(f"texts added more than once: {twice}")
    if seen != sorted(seen):
        problems.append(f"applied out of order: {seen}")
    missing = set(burst.accepted[user]) - set(seen)
    if missing:
        problems.append(f"accepted adds {sorted(missing)} were never applied")
    if problems:
        return problems, []
    return [], [
        (index, e.memory_id)
        for index, e in zip(seen, adds, strict=True)
        if e.request_id != burst.accepted[user][index]
    ]


async def check_absorbed(kv: Bucket, user: str, request_id: str, memory_id: str) -> bool:
    """The accepted retry of a text that an earlier attempt stored ended NONE on that memory. False
    when no outcome was recorded (ingest never fails a command for want of its record, and the
    record's bucket may have been electing a leader just then)."""
    try:
        record = await retried(lambda: requests.read(kv, user, request_id), f"the request {request_id}")
    except NotFound:
        return False
    if record.status == "pending":
        return False
    assert record.status == "applied" and record.result is not None, record
    assert [(r.id, r.event) for r in record.result.results] == [(memory_id, c.ChangeKind.NONE)], record
    return True
