import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from openmemory_ingest import feed as feed_module
from openmemory_ingest.feed import CommandFeed
from openmemory_testing import unique


@pytest_asyncio.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


async def one_at_a_time(nc: NatsClient, ack_wait: float = 30.0) -> tuple[str, str, str]:
    """A stream of its own and a consumer like ingest's (one command unacked at a time)."""
    name = f"FEED{unique().replace('-', '')[:12]}"
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    await js.add_consumer(name, ConsumerConfig(
        durable_name="ingest", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1, ack_wait=ack_wait,
    ))  # fmt: skip
    return name, "ingest", f"{name}.c"


async def requests_seen(nc: NatsClient, feed: CommandFeed) -> list[Msg]:
    seen: list[Msg] = []

    async def saw(msg: Msg) -> None:
        seen.append(msg)

    await nc.subscribe(feed.subject, cb=saw)  # the pull requests, as the JetStream API gets them
    await nc.flush()
    return seen


async def test_commands_in_a_row_come_in_order_on_one_request_and_each_only_after_the_last_is_acked(
    nc: NatsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "PULL_EXPIRES", 3.0)  # one request outlasts a slow machine's pauses
    stream, durable, subject = await one_at_a_time(nc)
    for i in range(5):
        await nc.jetstream().publish(subject, f"command {i}".encode())
    feed = CommandFeed(nc, stream, durable)
    await feed.start()
    seen = await requests_seen(nc, feed)
    got = []
    async with contextlib.aclosing(feed.requested()) as commands:
        async for msg in commands:
            got.append(msg.data.decode())
            if len(got) == 1:  # unacked, nothing else comes
                await asyncio.sleep(0.3)
                assert feed._arrived.empty()
                info = await nc.jetstream().consumer_info(stream, durable)
                assert info.num_ack_pending == 1 and info.num_pending == 4
            await msg.ack_sync()
            if len(got) == 5:
                break
    assert got == [f"command {i}" for i in range(5)]
    assert len(seen) == 1  # one pull request for the five
    await feed.stop()


async def test_a_request_ends_when_it_expires_and_the_next_one_brings_what_came_since(
    nc: NatsClient,
) -> None:
    stream, durable, subject = await one_at_a_time(nc)
    feed = CommandFeed(nc, stream, durable)
    await feed.start()
    seen = await requests_seen(nc, feed)
    started = asyncio.get_running_loop().time()
    assert [m async for m in feed.requested()] == []  # nothing came: the server said it expired
    waited = asyncio.get_running_loop().time() - started
    assert feed_module.PULL_EXPIRES * 0.9 <= waited < feed_module.PULL_EXPIRES + feed_module.ANSWER_GRACE
    await nc.jetstream().publish(subject, b"late")
    async with contextlib.aclosing(feed.requested()) as commands:
        async for msg in commands:
            assert msg.data == b"late"
            await msg.ack_sync()
            break
    assert len(seen) == 2
    await feed.stop()


async def test_waking_a_feed_ends_its_wait_at_once(nc: NatsClient) -> None:
    stream, durable, _ = await one_at_a_time(nc)
    feed = CommandFeed(nc, stream, durable)
    await feed.start()
    waiting = asyncio.create_task(anext(feed.requested(), None))
    await asyncio.sleep(0.1)
    feed.wake()
    assert await asyncio.wait_for(waiting, 0.5) is None
    await feed.stop()


async def test_a_command_sent_before_the_stop_goes_at_once_to_the_next_worker(nc: NatsClient) -> None:
    # a long ack wait: a command left unacked would block the partition for a minute
    stream, durable, subject = await one_at_a_time(nc, ack_wait=60.0)
    for text in (b"first", b"second"):
        await nc.jetstream().publish(subject, text)
    feed = CommandFeed(nc, stream, durable)
    await feed.start()
    async with contextlib.aclosing(feed.requested()) as commands:
        first = await anext(commands)
        await first.ack_sync()  # the server sends "second" on the same request at once
        for _ in range(50):
            if not feed._arrived.empty():
                break
            await asyncio.sleep(0.02)
        assert not feed._arrived.empty()
    await feed.stop()  # the worker stops before it takes "second"
    other = CommandFeed(nc, stream, durable)
    await other.start()
    async with contextlib.aclosing(other.requested()) as commands:
        second = await asyncio.wait_for(anext(commands), 2.0)  # not after the ack wait
        assert second.data == b"second" and second.metadata.num_delivered == 2
        await second.ack_sync()
    await other.stop()
    info = await nc.jetstream().consumer_info(stream, durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_stopped_feed_gets_nothing_more(nc: NatsClient) -> None:
    stream, durable, subject = await one_at_a_time(nc)
    feed = CommandFeed(nc, stream, durable)
    await feed.start()
    waiting = asyncio.create_task(anext(feed.requested(), None))  # a request open at the server
    await asyncio.sleep(0.1)
    await feed.stop()
    await nc.jetstream().publish(subject, b"after the stop")
    await asyncio.sleep(0.3)
    info = await nc.jetstream().consumer_info(stream, durable)
    assert info.num_ack_pending == 0 and info.num_pending == 1  # the server dropped the request
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting


async def test_a_command_sent_as_an_idle_feed_stops_is_never_left_unacked(nc: NatsClient) -> None:
    # the command reaches the server while the feed's request is open and the worker is stopping:
    # it must not stay unacked until the ack wait (a minute here), holding the partition
    for _ in range(6):
        stream, durable, subject = await one_at_a_time(nc, ack_wait=60.0)
        feed = CommandFeed(nc, stream, durable)
        await feed.start()
        waiting = asyncio.create_task(anext(feed.requested(), None))
        await asyncio.sleep(0.05)
        await nc.publish(subject, b"just in time")  # stored without waiting for the store's answer
        feed.wake()
        got = await waiting
        if got is not None:  # it came before the wake: the worker would apply it
            await got.ack_sync()
            await feed.stop()
            continue
        await feed.stop()
        other = CommandFeed(nc, stream, durable)
        await other.start()
        async with contextlib.aclosing(other.requested()) as commands:
            msg = await asyncio.wait_for(anext(commands), 2.5)
            assert msg.data == b"just in time"
            await msg.ack_sync()
        await other.stop()


async def test_a_late_answer_to_an_older_request_does_not_end_the_current_one(nc: NatsClient) -> None:
    stream, durable, subject = await one_at_a_time(nc)
    feed = CommandFeed(nc, stream, durable)
    await feed.start()
    seen = await requests_seen(nc, feed)
    assert [m async for m in feed.requested()] == []  # the first request expires
    async with contextlib.aclosing(feed.requested()) as commands:
        late = asyncio.create_task(anext(commands))
        await asyncio.sleep(0.1)
        # the first request's expiry, answered again (late, as after a stall of the event loop)
        await nc.publish(seen[0].reply, b"", headers={"Status": "408", "Description": "Request Timeout"})
        await nc.flush()
        await asyncio.sleep(0.1)
        await nc.jetstream().publish(subject, b"on the second request")
        msg = await asyncio.wait_for(late, 1.0)
        assert msg.data == b"on the second request"
        await msg.ack_sync()
    assert len(seen) == 2  # no third request: the old answer did not end the second
    await feed.stop()
