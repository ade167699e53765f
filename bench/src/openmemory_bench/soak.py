"""`openmemory bench soak --minutes N`: a whole system under a steady mixed load, with ingest
restarted every few minutes, checked at the end for lost and duplicated writes.

The system is split as a deployment would be: nats-server and FalkorDB supervised by the bench (as
the runtime supervises its embedded ones), the front (`openmemory run --target gateway,admin`) and
the workers (`--target ingest,search`: the embedded vector engine serves one process, so search
restarts with ingest). `clients` official MCP clients (streamable HTTP, one user each) add, search,
list, get and delete memories, and edit them through the admin API (MCP has no edit tool). Every
`restart_every` seconds the workers process is stopped (SIGKILL and SIGTERM in turn) and started
again; commands wait in JetStream meanwhile.

Each client keeps what it was told: an add answered (done or accepted) makes the memory
`memory_id_for(request id, 0)` with its text (adds are verbatim), an edit answered changes its text,
a delete answered removes it. A call that failed in transport may or may not have been applied: its
memory is "uncertain" and only checked for duplicates. At the end, once the command backlog is
empty, each user's memories are listed and compared: missing or stale ones are lost writes, extra
ones and texts stored twice are duplicated writes, and the events stream must hold one ADD event per
request id. Reported: throughput, p50/p95/p99 per tool, errors per tool (and how many fell in a
restart window), and each process's RSS over time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from openmemory_core import contracts as c

QUERIES = ["what do I like?", "where have I been?", "tell me about my notes", "music", "food", "travel"]
TOPICS = ["tea", "the cello", "Lisbon", "ramen", "hiking", "Rust", "chess", "Berlin", "yoga", "poetry"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def rss_kib(pid: int) -> int | None:
    """A process's resident set, from /proc (None once it is gone, or off Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))
    refusals: Counter[str] = field(default_factory=Counter)  # a memory not applied yet: fair
    restarts: list[tuple[float, float]] = field(default_factory=list)  # (stopped, healthy again)
    started: float = 0.0

    def in_restart(self, moment: float) -> bool:
        """Whether a moment falls while the workers were down or settling (15 s after)."""
        return any(a <= moment - self.started <= b + 15.0 for a, b in self.restarts)


@dataclass
class Told:
    """What one client was told about its user's memories."""

    memories: dict[str, str] = field(default_factory=dict)  # id -> text it should have now
    uncertain: set[str] = field(default_factory=set)  # ids whose last write's answer was lost
    deleted: set[str] = field(default_factory=set)
    request_ids: list[str] = field(default_factory=list)


class SoakClient:
    def __init__(self, number: int, user: str, key: str, gateway: str, admin: str, tally: Tally) -> None:
        self.number, self.user, self.key = number, user, key
        self.gateway, self.admin, self.tally = gateway, admin, tally
        self.told = Told()
        self.rng = random.Random(number)
        self.turn = 0

    async def _timed(self, tool: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self.tally.latencies[tool].append((time.perf_counter() - started) * 1000)

    def _failed(self, tool: str, why: str) -> None:
        self.tally.errors[tool].append((time.monotonic(), why[:200]))

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                await self._session(deadline)
            except Exception as exc:  # a session broken by a restart: count it, open another
                self._failed("session", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1)

    async def _session(self, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            streamable_http_client(f"{self.gateway}/mcp", http_client=http) as (read, write, *_),
            ClientSession(read, write) as session,
            httpx.AsyncClient(base_url=f"{self.admin}/api/v1", headers=headers, timeout=60) as rest,
        ):
            await session.initialize()
            while time.monotonic() < deadline:
                await self._step(session, rest)

    async def _call(self, session: ClientSession, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        result = await self._timed(tool, session.call_tool(tool, args))
        if result.is_error:
            text = " ".join(getattr(part, "text", "") for part in result.content)
            if "no such memor" in text:  # its add is accepted, not applied yet
                self.tally.refusals[tool] += 1
            else:
                self._failed(tool, text)
            return None
        return dict(result.structured_content or {})

    async def _step(self, session: ClientSession, rest: httpx.AsyncClient) -> None:
        self.turn += 1
        roll = self.rng.random()
        known = sorted(self.told.memories)
        if roll < 0.4 or not known:
            text = f"Soak note {self.turn} of {self.user}: I like {self.rng.choice(TOPICS)}."
            try:
                answer = await self._call(session, "add_memories", {"text": text, "infer": False})
            except Exception:
                self.told.uncertain.add(text)  # the text: its id is unknown
                raise
            if answer is not None:
                self.told.request_ids.append(answer["request_id"])
                self.told.memories[c.memory_id_for(answer["request_id"], 0)] = text
        elif roll < 0.7:
            await self._call(session, "search_memory", {"query": self.rng.choice(QUERIES)})
        elif roll < 0.8:
            await self._call(session, "list_memories", {"limit": 20})
        elif roll < 0.85:
            await self._call(session, "get_memory", {"memory_id": self.rng.choice(known)})
        elif roll < 0.93:
            memory_id = self.rng.choice(known)
            text = f"Soak note {self.turn} of {self.user}, edited: I love {self.rng.choice(TOPICS)}."
            try:
                edit = rest.patch(f"/memories/{memory_id}", json={"text": text})
                answer = await self._timed("edit (admin API)", edit)
            except Exception as exc:
                self.told.uncertain.add(memory_id)
                self._failed("edit (admin API)", f"{type(exc).__name__}: {exc}")
                return
            if answer.status_code == 200:
                self.told.memories[memory_id] = text
            elif answer.status_code == 404:  # its add is not applied yet
                self.tally.refusals["edit (admin API)"] += 1
            else:
                self._failed("edit (admin API)", f"{answer.status_code} {answer.text}")
        else:
            memory_id = self.rng.choice(known)
            try:
                answer = await self._call(session, "delete_memories", {"memory_ids": [memory_id]})
            except Exception:
                self.told.uncertain.add(memory_id)
                raise
            if answer is not None:
                del self.told.memories[memory_id]
                self.told.deleted.add(memory_id)


async def _backlog(nats_url: str) -> int:
    from openmemory_core.bus import Bus

    bus = await Bus.connect(nats_url, "soak", c.DEFAULT_PARTITIONS)
    try:
        waiting = 0
        for partition in range(c.DEFAULT_PARTITIONS):
            info = await bus.js.consumer_info(c.COMMANDS_STREAM, c.ingest_durable(partition))
            waiting += (info.num_pending or 0) + (info.num_ack_pending or 0)
        return waiting
    finally:
        await bus.close()


async def _stored(client: SoakClient) -> list[tuple[str, str]]:
    """(id, text) of every memory of the client's user, through MCP."""
    headers = {"Authorization": f"Bearer {client.key}"}
    found: list[tuple[str, str]] = []
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{client.gateway}/mcp", http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = await session.call_tool("list_memories", args)
            body = dict(page.structured_content or {})
            found += [(m["id"], m["memory"]) for m in body["results"]]
            cursor = body.get("next_cursor")
            if not cursor:
                return found


async def _adds_per_request(nats_url: str, users: list[str]) -> Counter[str]:
    from openmemory_core.bus import Bus

    bus = await Bus.connect(nats_url, "soak", c.DEFAULT_PARTITIONS)
    try:
        counted: Counter[str] = Counter()
        for user in users:
            counted.update(e.request_id for e in await bus.events_of(user) if e.change is c.ChangeKind.ADD)
        return counted
    finally:
        await bus.close()


def _check(client: SoakClient, stored: list[tuple[str, str]], adds: Counter[str]) -> dict[str, list[str]]:
    told = client.told
    by_id = dict(stored)
    texts = Counter(text for _, text in stored)
    lost = [f"{i}: {t!r}" for i, t in told.memories.items() if i not in told.uncertain and by_id.get(i) != t]
    extra = [
        f"{i}: {t!r}"
        for i, t in stored
        if i not in told.memories and i not in told.uncertain and t not in told.uncertain
    ]
    twice = [f"{t!r} x{n}" for t, n in texts.items() if n > 1]
    twice += [f"request {r}: {adds[r]} ADD events" for r in told.request_ids if adds[r] > 1]
    return {"lost": lost, "duplicated": extra + twice}


async def run(minutes: float, clients: int = 20, restart_every: float = 180.0) -> dict[str, Any]:
    from openmemory_core.servers import embedded_falkordb, embedded_nats, start_embedded
    from openmemory_testing import start_system, stop_all

    seconds = minutes * 60
    with tempfile.TemporaryDirectory(prefix="om-soak-") as tmp:
        root = Path(tmp)
        nats, nats_url = await start_embedded(embedded_nats, root / "nats")
        graph, graph_url = await start_embedded(embedded_falkordb, root / "graph")
        env = {
            "OPENMEMORY_NATS_URL": nats_url,
            "OPENMEMORY_GRAPH_URL": graph_url,
            "OPENMEMORY_GATEWAY_RATE_LIMIT_PER_MINUTE": "1000000",
            "OPENMEMORY_ADMIN_RATE_LIMIT_PER_MINUTE": "1000000",
            "OPENMEMORY_INGEST_ACK_WAIT_SECONDS": "10",  # a killed worker's command comes back soon
            "OPENMEMORY_LOG_LEVEL": "WARNING",
        }
        workers = start_system(root / "workers", "ingest,search", env)
        front = start_system(root / "front", "gateway,admin", env)
        tally = Tally()
        samples: list[dict[str, Any]] = []
        try:
            keys = [front.cli("keys", "create", "--user", f"soak-{i}").stdout.strip() for i in range(clients)]
            users = [f"soak-{i}" for i in range(clients)]
            soakers = [
                SoakClient(i, users[i], keys[i], front.gateway_url, front.admin_url, tally)
                for i in range(clients)
            ]
            started = tally.started = time.monotonic()
            deadline = started + seconds

            async def restarts() -> None:
                nonlocal workers
                count = 0
                while time.monotonic() + restart_every < deadline:
                    await asyncio.sleep(restart_every)
                    count += 1
                    stopped = time.monotonic()
                    if count % 2:
                        os.kill(workers.process.pid, signal.SIGKILL)
                        await asyncio.to_thread(workers.process.wait)
                    else:
                        await asyncio.to_thread(workers.stop, 60)
                    workers = await asyncio.to_thread(start_system, root / "workers", "ingest,search", env)
                    tally.restarts.append((stopped - started, time.monotonic() - started))

            async def sample() -> None:
                while time.monotonic() < deadline:
                    pids = {"front": front.process.pid, "workers": workers.process.pid,
                            "nats-server": nats.pid, "falkordb": graph.pid}  # fmt: skip
                    samples.append(
                        {"t": round(time.monotonic() - started, 1)}
                        | {name: rss_kib(pid) if pid else None for name, pid in pids.items()}
                    )
                    await asyncio.sleep(max(5.0, seconds / 60))

            background = [asyncio.create_task(restarts()), asyncio.create_task(sample())]
            await asyncio.gather(*(s.run(deadline) for s in soakers))
            elapsed = time.monotonic() - started
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            drain_started = time.monotonic()
            for _ in range(300):  # the commands still waiting are applied (at most 5 minutes)
                if not await _backlog(nats_url):
                    break
                await asyncio.sleep(1)
            drained = time.monotonic() - drain_started
            adds = await _adds_per_request(nats_url, users)
            checks = [_check(s, await _stored(s), adds) for s in soakers]
        finally:
            stop_all([front, workers])
            await graph.stop()
            await nats.stop()
    return _report(clients, elapsed, restart_every, tally, samples, checks, drained, soakers)


def _report(
    clients: int,
    elapsed: float,
    restart_every: float,
    tally: Tally,
    samples: list[dict[str, Any]],
    checks: list[dict[str, list[str]]],
    drained: float,
    soakers: list[SoakClient],
) -> dict[str, Any]:
    calls = sum(len(v) for v in tally.latencies.values())
    memory: dict[str, dict[str, Any]] = {}
    for name in ("front", "workers", "nats-server", "falkordb"):
        seen = [(s["t"], s[name]) for s in samples if s.get(name)]
        if seen:
            memory[name] = {
                "first_mib": round(seen[0][1] / 1024, 1),
                "peak_mib": round(max(v for _, v in seen) / 1024, 1),
                "last_mib": round(seen[-1][1] / 1024, 1),
            }
    lost = [item for check in checks for item in check["lost"]]
    duplicated = [item for check in checks for item in check["duplicated"]]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "restart_every_s": restart_every,
        "restarts": [(round(a, 1), round(b, 1)) for a, b in tally.restarts],
        "calls": calls,
        "throughput_calls_per_s": round(calls / elapsed, 1) if elapsed else 0.0,
        "by_tool": {
            tool: {
                "calls": len(values),
                "per_s": round(len(values) / elapsed, 1),
                "p50_ms": round(statistics.median(values), 1),
                "p95_ms": round(percentile(values, 0.95), 1),
                "p99_ms": round(percentile(values, 0.99), 1),
                "errors": len(tally.errors.get(tool, [])),
            }
            for tool, values in sorted(tally.latencies.items())
        },
        "errors": {tool: len(errs) for tool, errs in sorted(tally.errors.items())},
        "errors_in_restart_windows": sum(
            1 for errs in tally.errors.values() for t, _ in errs if tally.in_restart(t)
        ),
        "refusals_not_applied_yet": dict(tally.refusals),
        "error_samples": [f"{tool}: {why}" for tool, errs in tally.errors.items() for _, why in errs[:3]],
        "writes_told": sum(len(s.told.request_ids) for s in soakers),
        "memories_expected": sum(len(s.told.memories) for s in soakers),
        "uncertain": sum(len(s.told.uncertain) for s in soakers),
        "backlog_drained_in_s": round(drained, 1),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "lost_samples": lost[:10],
        "duplicated_samples": duplicated[:10],
        "rss": memory,
        "rss_samples": samples,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['clients']} MCP clients for {report['seconds']} s, workers restarted at "
        f"{', '.join(f'{a} s (healthy at {b} s)' for a, b in report['restarts']) or 'never'}: "
        f"{report['calls']} calls, {report['throughput_calls_per_s']} calls/s",
        "",
        "| tool | calls | per s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for tool, row in report["by_tool"].items():
        lines.append(
            f"| {tool} | {row['calls']} | {row['per_s']} | {row['p50_ms']} | {row['p95_ms']} "
            f"| {row['p99_ms']} | {row['errors']} |"
        )
    lines += ["", "| process | RSS first MiB | peak MiB | last MiB |", "|---|---|---|---|"]
    for name, row in report["rss"].items():
        lines.append(f"| {name} | {row['first_mib']} | {row['peak_mib']} | {row['last_mib']} |")
    lines += [
        "",
        f"writes answered: {report['writes_told']} adds; memories expected at the end: "
        f"{report['memories_expected']} ({report['uncertain']} uncertain after a lost answer); "
        f"backlog drained in {report['backlog_drained_in_s']} s",
        f"lost writes: {report['lost']}; duplicated writes: {report['duplicated']}",
        f"errors by tool: {report['errors']} ({report['errors_in_restart_windows']} while the workers "
        "restarted or within 15 s after); refused as not applied yet: "
        f"{report['refusals_not_applied_yet']}",
    ]
    lines += [f"  {sample}" for sample in report["error_samples"][:10]]
    lines += [f"  lost: {sample}" for sample in report["lost_samples"]]
    lines += [f"  duplicated: {sample}" for sample in report["duplicated_samples"]]
    return "\n".join(lines)
