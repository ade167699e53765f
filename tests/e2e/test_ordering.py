"""Two ingest worker processes pulling the same partitions still apply each user's commands in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.servers import embedded_nats, start_embedded
from openmemory_testing import eventually, start_system, stop_all, unique

USERS = 3
ADDS_PER_USER = 15


async def test_two_worker_processes_keep_each_users_order(tmp_path: Path, graph_url: str) -> None:
    nats_proc, nats_url = await start_embedded(embedded_nats, tmp_path / "nats")
    env = {"OPENMEMORY_NATS_URL": nats_url, "OPENMEMORY_GRAPH_URL": graph_url}
    # Each worker keeps vectors in its own local store: this test reads only the event order.
    workers = [start_system(tmp_path / f"worker{i}", "ingest,search", env) for i in (1, 2)]
    bus = await Bus.connect(nats_url, "ordering-test", c.DEFAULT_PARTITIONS)
    try:
        published: dict[str, list[str]] = {unique(): [] for _ in range(USERS)}
        for n in range(ADDS_PER_USER):
            for user, ids in published.items():
                command = c.AddCommand(user_id=user, app="t", text=f"Fact number {n} of {user}.", infer=False)
                await bus.publish_command(command)
                ids.append(command.request_id)

        async def applied(user: str) -> list[str]:
            return [e.request_id for e in await bus.events_of(user)]

        for user, ids in published.items():
            for _ in range(300):
                seen = await applied(user)
                if len(seen) == len(ids):
                    break
                await asyncio.sleep(0.1)
            assert seen == ids, f"user {user}: applied out of order"

        # A worker logs an add after its event is out and its ack is confirmed: wait for the last.
        async def logged() -> list[int] | None:
            shares = [w.log().count("applied add") for w in workers]
            return shares if sum(shares) >= USERS * ADDS_PER_USER else None

        shares = await eventually(logged)
        assert sum(shares) == USERS * ADDS_PER_USER
        assert all(share > 0 for share in shares), f"one worker did all the work: {shares}"
    finally:
        await bus.close()
        stop_all(workers)
        await nats_proc.stop()
