"""The bus on a three-node NATS cluster: replicas for every stream and bucket, and the upgrade of a
topology made with one copy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.errors import Unavailable
from openmemory_testing import unique
from openmemory_testing.servers import NatsCluster

STREAMS = [c.COMMANDS_STREAM, c.EVENTS_STREAM, c.DEAD_LETTER_STREAM, c.ACCESS_STREAM]
BUCKETS = [c.KEYS_BUCKET, c.APPS_BUCKET, c.SETTINGS_BUCKET, c.RATE_BUCKET]


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    nats_cluster = NatsCluster(tmp_path / "nats")
    try:
        await nats_cluster.start()
        yield nats_cluster
    finally:
        nats_cluster.stop()


async def replica_counts(bus: Bus) -> dict[str, int]:
    """Each stream's and bucket's configured copies."""
    counts = {}
    for name in [*STREAMS, *(f"KV_{b}" for b in BUCKETS)]:
        info = await bus.js.stream_info(name)
        counts[name] = info.config.num_replicas or 1
    return counts


async def test_a_topology_made_with_one_copy_gets_three_after_a_restart_with_the_setting(
    cluster: NatsCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = unique()
    before = await Bus.connect(cluster.url, "v1", partitions=1, replicas=1)
    try:
        assert set((await replica_counts(before)).values()) == {1}
        command = c.AddCommand(user_id=user, app="a", text="I keep bees.")
        await before.publish_command(command)
        await (await before.keys_bucket()).put("k", b"kept")
        await before.ensure_ingest_consumer(0, ack_wait=30)
    finally:
        await before.close()

    monkeypatch.setenv("OPENMEMORY_NATS_REPLICAS", "3")  # the restarted process reads the setting
    after = await Bus.connect(cluster.url, "v2", partitions=1)
    try:
        assert after.replicas == 3
        assert set((await replica_counts(after)).values()) == {3}

        async def copied() -> bool:
            """JetStream has copied the stream to the two new peers, and the ingest consumer follows.
            The server does this on its own timers: ~10 s for the stream and ~20 s for the consumer
            on an idle 2-core machine, over 60 s once on a loaded one. Hence the long deadline."""
            info = await after.js.stream_info(c.COMMANDS_STREAM)
            peers = (info.cluster.replicas or []) if info.cluster else []
            durable = await after.js.consumer_info(c.COMMANDS_STREAM, c.ingest_durable(0))
            followers = (durable.cluster.replicas or []) if durable.cluster else []
            return len(peers) == 2 and all(p.current for p in peers) and len(followers) == 2

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if await copied():
                break
            await asyncio.sleep(0.2)
        assert await copied(), (await after.js.stream_info(c.COMMANDS_STREAM)).cluster
        leader = await cluster.stream_leader(c.COMMANDS_STREAM)
    finally:
        await after.close()

    # The old single copy's node goes away: the command and the key are still there.
    cluster.kill(leader)
    survivor = await connect_during_election(cluster.url)
    try:
        msg = await survivor.js.get_last_msg(c.COMMANDS_STREAM, c.command_subject(user, 1))
        assert c.CommandEnvelope.model_validate_json(msg.data or b"").command.request_id == command.request_id
        assert (await (await survivor.keys_bucket()).get("k")).value == b"kept"
    finally:
        await survivor.close()


async def connect_during_election(url: str) -> Bus:
    """A bus, once the streams the killed node led have elected new leaders (a few seconds)."""
    for _ in range(10):
        try:
            return await Bus.connect(url, "after-kill", partitions=1, replicas=3)
        except TimeoutError:  # no stream leader yet: JetStream does not answer
            await asyncio.sleep(0.5)
    raise AssertionError("no new stream leaders within the retries")


async def test_more_replicas_than_servers_is_refused_with_a_message_that_names_the_setting(
    own_nats_url: str,
) -> None:
    await (await Bus.connect(own_nats_url, "one", partitions=1, replicas=1)).close()
    with pytest.raises(Unavailable, match="OPENMEMORY_NATS_REPLICAS"):
        await Bus.connect(own_nats_url, "three", partitions=1, replicas=3)
