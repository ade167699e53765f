"""`openmemory bench ingest-cost`: CPU spent per memory by an ingest process, outside the model.

The workers run as a deployment runs them: `openmemory run --target ingest,search` in its own
process, over a nats-server and FalkorDB the bench supervises. The bench publishes verbatim adds
(no extractor, as `add_memories` with `infer: false` does) for several users at once from its own
process, so the client's work is not counted, and reads each process's CPU time from `/proc`
before and after (after a warm-up). The model's share is measured apart: the same texts embedded
in the calls the worker's lane made, by the same model in this process, with the worker's thread
count (`--model-threads`) and without thread spinning, as an ingest process embeds. What is left is
the worker's own work: validation, JSON, the write guard, NATS acks and publishes, the vector
upsert, graph and event writes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

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


BATCH_METRIC = "openmemory_embedding_batch_texts"


def lane_calls(metrics: str) -> dict[float, float]:
    """How many of the embedding lane's calls embedded at most each bucket's count of texts (the
    cumulative buckets of `openmemory_embedding_batch_texts` in a `/metrics` page)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == BATCH_METRIC
        for sample in family.samples
        if sample.name == f"{BATCH_METRIC}_bucket" and sample.labels["le"] != "+Inf"
    }


async def _lane_calls(ops_url: str) -> dict[float, float]:
    async with httpx.AsyncClient() as client:
        return lane_calls((await client.get(f"{ops_url}/metrics")).text)


def call_sizes(before: dict[float, float], after: dict[float, float]) -> list[int]:
    """The sizes of the calls made between two readings of `lane_calls`, in a shuffled order (the
    replay may stop before their end), each counted at its bucket's upper bound: exact up to 8; above,
    a larger call costs the model less per text, so the model's share is if anything underestimated
    and the rest (the figure the goal is about) overestimated. Calls above the last bucket (128
    texts; a verbatim add is one) are not counted."""
    sizes: list[int] = []
    below = 0.0
    for bound in sorted(after):
        made = after[bound] - before.get(bound, 0.0)
        sizes += [int(bound)] * round(made - below)
        below = made
    random.Random(5).shuffle(sizes)
    return sizes


def _model_cpu(texts: list[str], sizes: list[int], threads: int = 0) -> float:
    """CPU seconds the model takes to embed these texts in calls of these sizes, as the worker's
    lane made them (each call's texts run in groups of like length, `MiniLMEmbedder.embed_sync`);
    `[1]` for one at a time. Per text, so the texts may run out before the sizes do. `threads` as
    the worker's `OPENMEMORY_MODEL_THREADS` (0: onnxruntime's choice)."""
    from openmemory_core.embeddings import MiniLMEmbedder

    embedder = MiniLMEmbedder(threads=threads or None, spinning=False)
    embedder.embed_sync(texts[:1])  # load and warm up
    done = 0
    before = _own_cpu()
    for size in itertools.cycle(sizes):
        if done >= len(texts):
            break
        chunk = texts[done : done + size]
        embedder.embed_sync(chunk)
        done += len(chunk)
    return (_own_cpu() - before) * len(texts) / done if done else 0.0


async def run(
    memories: int = 2000, users: int = 5, window: int = 64, warmup: int = 200, model_threads: int = 0
) -> dict[str, Any]:
    from openmemory_core.bus import Bus
    from openmemory_core.servers import SupervisedProcess, embedded_falkordb, embedded_nats, start_embedded
    from openmemory_testing import start_system, stop_all

    texts = [text for text, _ in synthetic(memories + warmup, seed=23)]
    with tempfile.TemporaryDirectory(prefix="om-cost-") as tmp:
        root = Path(tmp)
        servers: list[SupervisedProcess] = []
        workers = bus = None
        try:
            nats, nats_url = await start_embedded(embedded_nats, root / "nats", keep=servers)
            graph, graph_url = await start_embedded(embedded_falkordb, root / "graph", keep=servers)
            env = {
                "OPENMEMORY_NATS_URL": nats_url,
                "OPENMEMORY_GRAPH_URL": graph_url,
                "OPENMEMORY_LOG_LEVEL": "WARNING",
                "OPENMEMORY_MODEL_THREADS": str(model_threads),
            }
            workers = start_system(root / "workers", "ingest,search", env)
            bus = await Bus.connect(nats_url, "cost", c.DEFAULT_PARTITIONS)
            await _adds(bus, texts[:warmup], users, window)
            pids = {"workers": workers.process.pid, "nats-server": nats.pid, "falkordb": graph.pid}
            calls_before = await _lane_calls(workers.ops_url)  # before the CPU is read: not counted
            before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
            loop_before = main_thread_cpu_seconds(workers.process.pid)
            wall = await _adds(bus, texts[warmup:], users, window)
            spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items() if pid}
            loop = main_thread_cpu_seconds(workers.process.pid) - loop_before
            sizes = call_sizes(calls_before, await _lane_calls(workers.ops_url))
        finally:  # whatever failed, nothing the bench started outlives it
            if bus is not None:
                await bus.close()
            if workers is not None:
                stop_all([workers])
            for server in reversed(servers):
                await server.stop()
    alone = await asyncio.to_thread(_model_cpu, texts[warmup:], [1], model_threads)
    # no lane calls (an embedder outside the lane): the worker embedded one call per add
    model = await asyncio.to_thread(_model_cpu, texts[warmup:], sizes, model_threads) if sizes else alone
    per = {name: 1000 * seconds / memories for name, seconds in spent.items()}
    return {
        "memories": memories,
        "users": users,
        "in_flight": window,
        "model_threads": model_threads,
        "memories_per_s": round(memories / wall, 1),
        "core_ms_per_memory": {name: round(ms, 2) for name, ms in per.items()},
        "model_core_ms_per_memory": round(1000 * model / memories, 2),
        "model_alone_core_ms_per_memory": round(1000 * alone / memories, 2),
        "lane_calls": len(sizes),
        "lane_mean_texts": round(sum(sizes) / len(sizes), 1) if sizes else None,
        "workers_outside_model_core_ms": round(per["workers"] - 1000 * model / memories, 2),
        "workers_event_loop_core_ms": round(1000 * loop / memories, 2),
        "load_average": os.getloadavg(),
    }


def markdown(report: dict[str, Any]) -> str:
    per = report["core_ms_per_memory"]
    return "\n".join(
        [
            f"{report['memories']} verbatim adds from {report['users']} users, {report['in_flight']} in "
            f"flight, model threads {report['model_threads'] or 'as onnxruntime chooses'}: "
            f"{report['memories_per_s']} memories/s",
            "",
            "| process | core-ms per memory |",
            "|---|---|",
            *(f"| {name} | {ms} |" for name, ms in per.items()),
            f"| the model alone, the same texts in calls as the worker's lane made them "
            f"({report['lane_calls']} calls, {report['lane_mean_texts']} texts on average) "
            f"| {report['model_core_ms_per_memory']} |",
            f"| **ingest process outside the model** | **{report['workers_outside_model_core_ms']}** |",
            f"| of which its event loop's thread | {report['workers_event_loop_core_ms']} |",
            "",
            f"The model alone, one text at a time: {report['model_alone_core_ms_per_memory']} core-ms "
            "per memory.",
            "",
            "load average during the run (1, 5, 15 min): "
            + ", ".join(f"{x:.1f}" for x in report["load_average"]),
        ]
    )
