"""Nothing is lost: a burst of concurrent adds through MCP while the ingest process is killed with
SIGKILL, while it is stopped with SIGTERM, while nats-server restarts, and while the graph store is
frozen for 10 s. Afterwards every add is present exactly once. Real processes on loopback; each
scenario bounded in time."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from e2e_support import Client, ToolFailed, mcp_client
from mcp.shared.exceptions import MCPError

from openmemory_core.servers import SupervisedProcess, embedded_falkordb, embedded_nats
from openmemory_testing import RunningSystem, start_system, stop_all, unique

USERS = 20
ADDS_PER_USER = 100  # 2,000 adds per scenario


@dataclass
class Cluster:
    nats: SupervisedProcess
    graph: SupervisedProcess
    gateway: RunningSystem
    workers: RunningSystem
    env: dict[str, str]
    root: Path
    key_while_up: str = ""

    def key(self, user: str) -> str:
        return self.gateway.cli("keys", "create", "--user", user).stdout.strip()

    def restart_workers(self) -> None:
        self.workers = start_system(self.root / "workers", "ingest,search", self.env)


@pytest_asyncio.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    root = tmp_path_factory.mktemp("crash")
    nats, nats_url = embedded_nats(root / "nats")
    graph, graph_url = embedded_falkordb(root / "graph")
    await nats.start()
    await graph.start()
    env = {
        "OPENMEMORY_NATS_URL": nats_url,
        "OPENMEMORY_GRAPH_URL": graph_url,
        "OPENMEMORY_GATEWAY_ADD_WAIT_SECONDS": "0",  # answer "accepted" once the command is durable
        "OPENMEMORY_INGEST_ACK_WAIT_SECONDS": "5",  # a killed worker's command comes back quickly
        "OPENMEMORY_INGEST_MAX_BACKOFF_SECONDS": "2",
    }
    workers = start_system(root / "workers", "ingest,search", env)
    gateway = start_system(root / "gateway", "gateway", env)
    built = Cluster(nats, graph, gateway, workers, env, root)
    try:
        yield built
    finally:
        stop_all([built.gateway, built.workers])
        await graph.stop()
        await nats.stop()


async def add_with_retries(client: Client, text: str) -> None:
    """What a client does with a write that failed: send it again (a bus restart, a refusal)."""
    for attempt in range(60):
        try:
            await client.call("add_memories", text=text, infer=False)
            return
        except (ToolFailed, MCPError):
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
    raise AssertionError(f"could not add {text!r}")


async def burst(cluster: Cluster, tag: str) -> dict[str, set[str]]:
    """USERS clients adding ADDS_PER_USER memories each, all at once; returns what each user sent."""
    sent: dict[str, set[str]] = {}

    async def one_user() -> None:
        user = unique(tag)
        texts = [f"{tag} note {i} of {user}" for i in range(ADDS_PER_USER)]
        sent[user] = set(texts)
        key = cluster.key(user)
        for start in range(0, len(texts), 10):
            for attempt in range(30):
                try:  # a session can break while the bus restarts: open another, send the chunk again
                    async with mcp_client(cluster.gateway.mcp_url, key) as client:
                        await asyncio.gather(
                            *(add_with_retries(client, t) for t in texts[start : start + 10])
                        )
                    break
                except Exception:
                    if attempt == 29:
                        raise
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(one_user() for _ in range(USERS)))
    return sent


async def all_present_once(cluster: Cluster, sent: dict[str, set[str]], timeout: float = 180) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    missing: dict[str, int] = {}
    while asyncio.get_running_loop().time() < deadline:
        missing = {}
        for user, texts in sent.items():
            async with mcp_client(cluster.gateway.mcp_url, cluster.key(user)) as client:
                try:
                    stored = await client.texts()
                except ToolFailed:  # search is restarting
                    missing[user] = len(texts)
                    continue
            assert len(stored) == len(set(stored)), f"duplicates for {user}"
            assert set(stored) <= texts, f"unexpected memories for {user}"
            if len(stored) < len(texts):
                missing[user] = len(texts) - len(stored)
        if not missing:
            return
        await asyncio.sleep(2)
    raise AssertionError(f"still missing after {timeout}s: {missing}")


async def test_sigkill_of_ingest_during_a_burst_loses_nothing(cluster: Cluster) -> None:
    adding = asyncio.create_task(burst(cluster, "kill"))
    await asyncio.sleep(4)  # mid-burst: commands stored, some applied, one in hand
    os.kill(cluster.workers.process.pid, signal.SIGKILL)
    cluster.workers.process.wait()
    await asyncio.sleep(1)
    cluster.restart_workers()
    sent = await adding
    await all_present_once(cluster, sent)


async def test_a_graceful_stop_of_ingest_during_a_burst_is_prompt_and_loses_nothing(cluster: Cluster) -> None:
    """SIGTERM (what Kubernetes sends before a pod goes): ingest finishes the command in hand, stops
    pulling, and exits cleanly well within its grace period; a new process takes the rest."""
    adding = asyncio.create_task(burst(cluster, "term"))
    await asyncio.sleep(4)
    started = asyncio.get_running_loop().time()
    code = await asyncio.to_thread(cluster.workers.stop, 20)
    assert code == 0, cluster.workers.log()[-2000:]
    assert asyncio.get_running_loop().time() - started < 15
    cluster.restart_workers()
    sent = await adding
    await all_present_once(cluster, sent)


async def test_a_nats_restart_during_a_burst_loses_nothing(cluster: Cluster) -> None:
    cluster.key_while_up = cluster.key(unique("bus"))
    adding = asyncio.create_task(burst(cluster, "bus"))
    await asyncio.sleep(4)
    await cluster.nats.stop()
    async with httpx.AsyncClient(timeout=30) as http:  # no bus: a clear, retryable refusal
        down = await http.post(
            cluster.gateway.mcp_url, json={}, headers={"Authorization": f"Bearer {cluster.key_while_up}"}
        )
    assert down.status_code == 503 and "retry" in down.text, down.text
    await asyncio.sleep(1)
    await cluster.nats.start()
    sent = await adding
    await all_present_once(cluster, sent)


async def test_a_frozen_graph_store_delays_adds_and_loses_nothing(cluster: Cluster) -> None:
    adding = asyncio.create_task(burst(cluster, "graph"))
    await asyncio.sleep(3)
    pid = cluster.graph.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the store stops answering, as a hung or partitioned one does
    try:
        await asyncio.sleep(10)
    finally:
        os.kill(pid, signal.SIGCONT)
    sent = await adding
    await all_present_once(cluster, sent)
