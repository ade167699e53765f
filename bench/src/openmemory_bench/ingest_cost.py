"""`openmemory bench ingest-cost`: CPU spent per memory by an ingest process, outside the model.

The workers run as a deployment runs them: `openmemory run --target ingest,search` in its own
process, over a nats-server and FalkorDB the bench supervises. The bench publishes verbatim adds
(no extractor, as `add_memories` with `infer: false` does) for several users at once from its own
process, so the client's work is not counted, and reads each process's CPU time from `/proc`
before and after (after a warm-up). The model's share is measured apart: the same texts embedded
one at a time by the same model in this process, without thread spinning, as an ingest-only
process embeds. What is left is the worker's own work: validation, JSON, the write guard, NATS
acks and publishes, the vector upsert, graph and event writes.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from openmemory_bench.scale import synthetic
from openmemory_core import contracts as c

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc; 0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU of a process's first thread, which runs its event loop (the rest run the model, the
    stores' calls in worker threads, and onnxruntime's own threads)."""
    try:
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _adds(bus: Any, texts: list[str], users: int, window: int) -> float:
    """Publish one add per text, `window` in flight, users in turn; the wall time it took."""
    gate = asyncio.Semaphore(window)

    async def one(i: int, text: str) -> None:
        command = c.AddCommand(user_id=f"cost-{i % users}", app="bench", text=text, infer=False)
        async with gate, bus.result_waiter(command.request_id) as result:
            await bus.publish_command(command)
            done = await asyncio.wait_for(result, 120)
            if not done.ok:
                raise RuntimeError(f"an add failed: {done.error}")

    started = time.perf_counter()
    await asyncio.gather(*(one(i, text) for i, text in enumerate(texts)))
    return time.perf_counter() - started


def _model_cpu(texts: list[str]) -> float:
    """CPU seconds the model takes to embed these texts one at a time, as ingest does."""
    from openmemory_core.embeddings import MiniLMEmbedder

    embedder = MiniLMEmbedder(spinning=False)
    embedder.embed_sync(texts[:1])  # load and warm up
    before = _own_cpu()
    for text in texts:
        embedder.embed_sync([text])
    return _own_cpu() - before


async def run(memories: int = 2000, users: int = 5, window: int = 64, warmup: int = 200) -> dict[str, Any]:
    from openmemory_core.bus import Bus
    from openmemory_core.servers import embedded_falkordb, embedded_nats
    from openmemory_testing import start_system, stop_all

    texts = [text for text, _ in synthetic(memories + warmup, seed=23)]
    with tempfile.TemporaryDirectory(prefix="om-cost-") as tmp:
        root = Path(tmp)
        nats, nats_url = embedded_nats(root / "nats")
        graph, graph_url = embedded_falkordb(root / "graph")
        env = {
            "OPENMEMORY_NATS_URL": nats_url,
            "OPENMEMORY_GRAPH_URL": graph_url,
            "OPENMEMORY_LOG_LEVEL": "WARNING",
        }
        workers = bus = None
        try:
            await nats.start()
            await graph.start()
            workers = start_system(root / "workers", "ingest,search", env)
            bus = await Bus.connect(nats_url, "cost", c.DEFAULT_PARTITIONS)
            await _adds(bus, texts[:warmup], users, window)
            pids = {"workers": workers.process.pid, "nats-server": nats.pid, "falkordb": graph.pid}
            before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
            loop_before = main_thread_cpu_seconds(workers.process.pid)
            wall = await _adds(bus, texts[warmup:], users, window)
            spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items() if pid}
            loop = main_thread_cpu_seconds(workers.process.pid) - loop_before
        finally:  # whatever failed, nothing the bench started outlives it
            if bus is not None:
                await bus.close()
            if workers is not None:
                stop_all([workers])
            await graph.stop()
            await nats.stop()
    model = await asyncio.to_thread(_model_cpu, texts[warmup:])
    per = {name: 1000 * seconds / memories for name, seconds in spent.items()}
    return {
        "memories": memories,
        "users": users,
        "in_flight": window,
        "memories_per_s": round(memories / wall, 1),
        "core_ms_per_memory": {name: round(ms, 2) for name, ms in per.items()},
        "model_core_ms_per_memory": round(1000 * model / memories, 2),
        "workers_outside_model_core_ms": round(per["workers"] - 1000 * model / memories, 2),
        "workers_event_loop_core_ms": round(1000 * loop / memories, 2),
        "load_average": os.getloadavg(),
    }


def markdown(report: dict[str, Any]) -> str:
    per = report["core_ms_per_memory"]
    return "\n".join(
        [
            f"{report['memories']} verbatim adds from {report['users']} users, {report['in_flight']} in "
            f"flight: {report['memories_per_s']} memories/s",
            "",
            "| process | core-ms per memory |",
            "|---|---|",
            *(f"| {name} | {ms} |" for name, ms in per.items()),
            f"| the model alone (same texts, one at a time) | {report['model_core_ms_per_memory']} |",
            f"| **ingest process outside the model** | **{report['workers_outside_model_core_ms']}** |",
            f"| of which its event loop's thread | {report['workers_event_loop_core_ms']} |",
            "",
            "load average during the run (1, 5, 15 min): "
            + ", ".join(f"{x:.1f}" for x in report["load_average"]),
        ]
    )
