"""Backpressure: when ingest is behind, writes are refused with a retryable error; none is dropped."""

import asyncio

import pytest

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.errors import Busy
from openmemory_core.settings import GatewaySettings
from openmemory_gateway.service import Accepted, MemoryGateway
from openmemory_testing import unique


async def test_writes_are_refused_not_dropped_when_ingest_is_behind(bus: Bus) -> None:
    user = unique()
    partition = c.partition_subject(c.partition_of(user, bus.partitions))

    async def stored() -> int:
        info = await bus.js.stream_info(c.COMMANDS_STREAM, subjects_filter=partition)
        return (info.state.subjects or {}).get(partition, 0)

    waiting_before = await bus.backlog(user)  # no ingest runs here: whatever is queued stays queued
    settings = GatewaySettings(add_wait_seconds=0, max_backlog=waiting_before + 3)
    gateway = MemoryGateway(bus, settings, await bus.apps_bucket())
    principal = c.Principal(user_id=user, app="a", key_id="k")
    in_stream = await stored()
    for i in range(3):
        assert isinstance(await gateway.add(principal, f"I have {i} cats.", True), Accepted)
        await asyncio.sleep(0.6)  # the backlog figure is re-read at most twice a second
    with pytest.raises(Busy, match="nothing was stored: retry"):
        await gateway.add(principal, "I have 3 cats.", True)
    with pytest.raises(Busy):
        await gateway.delete_all(principal)
    assert await stored() == in_stream + 3  # the three accepted are kept; the refused were never stored
