"""`openmemory bench pull-cost`: what pulling one command costs, a pull request per command against
one for many (`openmemory_ingest.feed.CommandFeed`).

An embedded nats-server, a stream and a consumer like ingest's (`max_ack_pending=1`), a backlog of
commands the size of an add's; then each way takes and acks them all, one at a time, in turns. It
counts the pull requests the server got (a subscriber on the JetStream API subject sees each) and
the CPU this process (the worker's side) and nats-server spent per command. No command is applied:
this is the pulling alone, which `ingest-cost` cannot separate from the rest of a worker's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from openmemory_bench.ingest_cost import _own_cpu, cpu_seconds
from openmemory_core.servers import embedded_nats, start_embedded
from openmemory_ingest.feed import CommandFeed

STREAM = "PULLCOST"
Closing = Callable[[], Awaitable[None]]
#: An add's command as the gateway publishes it is about this size.
COMMAND_BYTES = 400


def _durable(partition: int) -> str:
    return f"ingest-{partition}"


async def _fetch_one_each(nc: NatsClient, partition: int, commands: int) -> tuple[list[bytes], Closing]:
    """nats-py's `fetch(1)`: a pull request per command."""
    sub = await nc.jetstream().pull_subscribe_bind(durable=_durable(partition), stream=STREAM)
    taken: list[bytes] = []
    while len(taken) < commands:
        for msg in await sub.fetch(1, timeout=2.0):
            taken.append(msg.data)
            await msg.ack_sync()
    return taken, sub.unsubscribe


async def _feed(nc: NatsClient, partition: int, commands: int) -> tuple[list[bytes], Closing]:
    """The product's way: one pull request for many."""
    feed = CommandFeed(nc, STREAM, _durable(partition))
    await feed.start()
    taken: list[bytes] = []
    while len(taken) < commands:
        async with contextlib.aclosing(feed.requested()) as pulled:
            async for msg in pulled:
                taken.append(msg.data)
                await msg.ack_sync()
                if len(taken) == commands:
                    break
    return taken, feed.stop  # a stop waits for the open request's end: not timed


WAYS = {"a request per command (fetch(1))": _fetch_one_each, "one request for many (CommandFeed)": _feed}


async def run(commands: int = 3000, rounds: int = 2, partitions: int = 1) -> dict[str, Any]:
    """`commands` in all, spread over `partitions` consumers taken from at once (as ingest takes
    its partitions)."""
    if partitions < 1 or rounds < 1 or commands < partitions:
        raise ValueError("pull-cost needs a partition, a round and a command per partition at least")
    each = commands // partitions
    with tempfile.TemporaryDirectory(prefix="om-pull-cost-") as folder:
        keep: list[Any] = []
        try:
            server, url = await start_embedded(embedded_nats, Path(folder), keep=keep)
            if server.pid is None:
                raise RuntimeError("nats-server did not start")
            pid = server.pid
            nc = await nats.connect(url)
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name=STREAM, subjects=[f"{STREAM}.>"]))
            for partition in range(partitions):
                await js.add_consumer(STREAM, ConsumerConfig(
                    durable_name=_durable(partition), filter_subject=f"{STREAM}.p{partition}",
                    ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1, ack_wait=30,
                ))  # fmt: skip
            requests = 0

            async def counted(_: Msg) -> None:
                nonlocal requests
                requests += 1

            await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.>", cb=counted)
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in WAYS}
            for _ in range(rounds):
                for name, way in WAYS.items():
                    sent = {
                        p: [json.dumps({"n": i, "text": "x" * COMMAND_BYTES}).encode() for i in range(each)]
                        for p in range(partitions)
                    }
                    for i in range(each):  # interleaved, as users' adds arrive
                        for p in range(partitions):
                            await js.publish(f"{STREAM}.p{p}", sent[p][i])
                    await nc.flush()
                    requests = 0
                    own, theirs, wall = _own_cpu(), cpu_seconds(pid), time.perf_counter()
                    done = await asyncio.gather(*(way(nc, p, each) for p in range(partitions)))
                    own, theirs = _own_cpu() - own, cpu_seconds(pid) - theirs
                    wall = time.perf_counter() - wall
                    await asyncio.gather(*(close() for _, close in done))
                    taken = [commands_ for commands_, _ in done]
                    await nc.flush()
                    if taken != [sent[p] for p in range(partitions)]:
                        raise RuntimeError(f"{name}: the commands came out of order or not all of them")
                    total = each * partitions
                    runs[name].append({
                        "requests_per_command": requests / total,
                        "worker_core_ms": 1e3 * own / total,
                        "nats_server_core_ms": 1e3 * theirs / total,
                        "commands_per_second": total / wall,
                    })  # fmt: skip
            await nc.close()
        finally:
            for proc in keep:
                await proc.stop()
    return {"commands": each * partitions, "partitions": partitions, "rounds": rounds, "runs": runs}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['commands']} commands on {report['partitions']} consumers taken at once, each command "
        f"acked before the next of its consumer, each way {report['rounds']} times in turns "
        "(core-ms per command):",
        "",
        "| way | pull requests per command | this process | nats-server | commands/s |",
        "|---|---|---|---|---|",
    ]
    for name, runs in report["runs"].items():
        for r in runs:
            lines.append(
                f"| {name} | {r['requests_per_command']:.3f} | {r['worker_core_ms']:.3f} | "
                f"{r['nats_server_core_ms']:.3f} | {r['commands_per_second']:.0f} |"
            )
    return "\n".join(lines)
