"""A read whose request is lost on its way (a NATS node dying under it) is asked again, within the
caller's wait: a KV read (the API-key and app checks of every MCP call) and a query to the search
service. `LossyLink` drops the message between a real client and a real `nats-server`, each test's
own (`own_nats_url`), so that no search service of another test answers these queries."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.errors
import pytest
import pytest_asyncio
from pydantic import BaseModel

from openmemory_core import contracts as c
from openmemory_core.bus import RESUBSCRIBE_SECONDS, Bus
from openmemory_core.errors import Unavailable
from openmemory_core.kv import READ_AGAIN_SECONDS, kv_value, open_bucket
from openmemory_testing.lossy import LossyLink

STATS = c.StatsResponse(total=3, by_state={"active": 3}, by_app=[], by_category=[], per_day=[])


@pytest_asyncio.fixture
async def link(own_nats_url: str) -> AsyncIterator[LossyLink]:
    lossy = LossyLink(own_nats_url, prefix="", count=0)  # armed by each test once its set-up is done
    yield lossy
    await lossy.close()


async def test_a_kv_read_whose_request_is_lost_is_asked_again(own_nats_url: str, link: LossyLink) -> None:
    nc = await nats.connect(await link.start())
    try:
        bucket = await open_bucket(nc.jetstream(), "lossy", history=1)
        await bucket.put("k", b"v")
        link.prefix, link.left = b"$JS.API.", 1  # the next JetStream request: the read's
        started = time.monotonic()
        assert await kv_value(bucket, "k") == (b"v", 1)
        took = time.monotonic() - started
        assert len(link.dropped) == 1 and "GET.KV_lossy" in link.dropped[0]  # direct or through the API
        assert READ_AGAIN_SECONDS <= took < 5.0  # the lost attempt waited out, not nats-py's 5 s

        link.left = 3  # every attempt lost (a bucket electing its leader): the bus did not answer
        with pytest.raises(nats.errors.TimeoutError):
            await bucket.get("k")
        assert len(link.dropped) == 4
        link.left = 3
        with pytest.raises(Unavailable, match="not reachable"):
            await kv_value(bucket, "k")
    finally:
        await nc.close()


async def _answering(bus: Bus, asked: list[dict[str, Any]], slow: float = 0.0) -> None:
    async def stats(request: dict[str, Any]) -> BaseModel:
        asked.append(request)
        await asyncio.sleep(slow)
        return STATS

    await bus.serve_query(c.Query.STATS, stats)
    await bus.nc.flush()


async def test_a_query_whose_request_is_lost_is_asked_again(own_nats_url: str, link: LossyLink) -> None:
    gateway = await Bus.connect(await link.start(), "gateway", partitions=1)
    search = await Bus.connect(own_nats_url, "search", partitions=1)
    asked: list[dict[str, Any]] = []
    try:
        await _answering(search, asked)
        link.prefix, link.left = c.Query.STATS.subject.encode(), 1
        started = time.monotonic()
        found = await gateway.query(c.Query.STATS, c.StatsRequest(user_id="u"), c.StatsResponse, 4.0)
        assert found == STATS
        assert link.dropped == [c.Query.STATS.subject]
        assert asked == [{"user_id": "u"}]  # the search service saw the second request only
        assert 2.0 <= time.monotonic() - started < 4.0  # half the wait for the lost one, then answered

        link.left = 2  # both attempts lost: the client is told so, naming its whole wait
        with pytest.raises(Unavailable, match="did not answer within 4s"):
            await gateway.query(c.Query.STATS, c.StatsRequest(user_id="u"), c.StatsResponse, 4.0)
        assert len(asked) == 1
    finally:
        await gateway.close()
        await search.close()


async def test_a_query_sent_while_the_search_service_subscribes_again_is_answered(own_nats_url: str) -> None:
    """No one serves the subject at first (a worker subscribing again through another node): asked
    again after the pause, the query is answered by the one request the worker saw."""
    gateway = await Bus.connect(own_nats_url, "gateway", partitions=1)
    search = await Bus.connect(own_nats_url, "search", partitions=1)
    asked: list[dict[str, Any]] = []

    async def subscribing_later() -> None:
        await asyncio.sleep(RESUBSCRIBE_SECONDS / 4)
        await _answering(search, asked)

    try:
        later = asyncio.create_task(subscribing_later())
        started = time.monotonic()
        found = await gateway.query(c.Query.STATS, c.StatsRequest(user_id="u"), c.StatsResponse, 4.0)
        await later
        assert found == STATS and asked == [{"user_id": "u"}]
        assert time.monotonic() - started >= RESUBSCRIBE_SECONDS  # the second attempt answered
    finally:
        await gateway.close()
        await search.close()


async def test_a_slow_answer_to_the_first_request_still_counts(own_nats_url: str) -> None:
    """Asked again at half the wait, the first request's answer (after 0.7 of the wait) is taken:
    waiting for the second alone would run past the wait. (Seconds doubled from 1.4 of 2 so that
    a slow machine's pause is not taken for a late answer.)"""
    gateway = await Bus.connect(own_nats_url, "gateway", partitions=1)
    search = await Bus.connect(own_nats_url, "search", partitions=1)
    asked: list[dict[str, Any]] = []
    try:
        await _answering(search, asked, slow=2.8)
        started = time.monotonic()
        found = await gateway.query(c.Query.STATS, c.StatsRequest(user_id="u"), c.StatsResponse, 4.0)
        assert found == STATS
        assert len(asked) == 2  # asked again at 2 s, answered by the first at 2.8 s
        assert time.monotonic() - started < 4.0
    finally:
        await gateway.close()
        await search.close()
