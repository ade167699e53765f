"""One partition's commands, in order, with one pull request for many of them.

The ingest consumer of a partition lets one command out at a time (`max_ack_pending=1`: a user's
commands are applied in order, whatever the number of workers). A pull request may ask for more than
one: it stays open at the server until it has delivered `PULL_BATCH` commands or `PULL_EXPIRES`
seconds have passed, and the server hands it the next command as soon as the previous is acked. So
commands in a row cost one request between them, not one each (`fetch(1)` per command cost the
worker 0.04-0.09 and nats-server 0.02-0.06 core-ms more per command; bench/README.md, "Ingest
overhead"). The order stays the consumer's: the next command comes only after the ack.

Each request has a reply subject of its own (`<inbox>.<n>`), so that the server's answer to an
older request (its expiry, late after a stall of the event loop) ends only that one, and the feed
knows which of its requests the server may still answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncGenerator

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header, StatusCode
from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)

#: Commands a pull request asks for at most.
PULL_BATCH = 64
#: How long a pull request stays open at the server.
PULL_EXPIRES = 1.0
#: How long past its expiry an answer to a request is waited for (the server answers an expired
#: request with status 408; a request lost in a reconnect gets no answer at all).
ANSWER_GRACE = 1.0
#: The server's "keep waiting" status (an idle heartbeat), the only one that does not end a request.
HEARTBEAT = StatusCode.CONTROL_MESSAGE
#: A server's answer that is not a command: its status (`JetStreamContext.is_status_msg`), else None.
status_of = JetStreamContext.is_status_msg
#: After an answer that ends a request unexpectedly (409: the consumer was deleted, or its leader
#: changed), wait this long before the next.
PAUSE_AFTER_REFUSAL = 0.5


class CommandFeed:
    """Pull requests for one consumer, on an inbox of its own (`start`, then `requested` as long as
    commands are wanted, then `stop`)."""

    def __init__(self, nc: NatsClient, stream: str, durable: str) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox = nc.new_inbox()
        self.request = json.dumps({"batch": PULL_BATCH, "expires": int(PULL_EXPIRES * 1e9)}).encode()
        self._arrived: asyncio.Queue[Msg | None] = asyncio.Queue()  # None: `wake`
        self._sub: Subscription | None = None
        self._numbers = itertools.count()
        #: The requests the server may still answer: reply subject -> (when sent, commands left).
        self._open: dict[str, tuple[float, int]] = {}

    async def start(self) -> None:
        async def arrived(msg: Msg) -> None:
            self._arrived.put_nowait(msg)

        self._sub = await self.nc.subscribe(f"{self.inbox}.*", cb=arrived)

    def _answered(self, msg: Msg, current: str | None) -> bool:
        """Note what `msg` says of a request: True when it ends one. A status other than a
        heartbeat ends the request it answers (it comes on that request's reply subject); a command
        comes on its own stream subject, so it counts against `current`, the request being read."""
        status = status_of(msg)
        if status == HEARTBEAT:
            return False
        if status is not None:
            return self._open.pop(msg.subject, None) is not None
        if current is None or current not in self._open:
            return False
        sent, left = self._open[current]
        if left > 1:
            self._open[current] = (sent, left - 1)
            return False
        del self._open[current]  # the last command it asked for
        return True

    def _forget_expired(self) -> None:
        """Requests past their expiry and the grace: the server answers them no more."""
        now = asyncio.get_running_loop().time()
        for subject, (sent, _) in list(self._open.items()):
            if now - sent > PULL_EXPIRES + ANSWER_GRACE:
                del self._open[subject]

    async def requested(self) -> AsyncGenerator[Msg, None]:
        """Ask for up to `PULL_BATCH` commands and yield each as it comes, until the request ends. The
        caller acks (or naks) each before it asks for the next: the server sends no other meanwhile.
        A command that comes on an older request (answered late) is yielded too, and counted against
        this one (a command does not say which request it answers)."""
        self._forget_expired()
        reply = f"{self.inbox}.{next(self._numbers)}"
        self._open[reply] = (asyncio.get_running_loop().time(), PULL_BATCH)
        await self.nc.publish(self.subject, self.request, reply=reply)
        while reply in self._open:
            try:
                async with asyncio.timeout(PULL_EXPIRES + ANSWER_GRACE):
                    msg = await self._arrived.get()
            except TimeoutError:
                self._open.pop(reply, None)
                return  # no answer: the request was lost (a reconnect); the caller asks again
            if msg is None:
                return  # woken: the caller is stopping
            self._answered(msg, reply)
            status = status_of(msg)
            if status is None:
                yield msg
            elif status not in (HEARTBEAT, StatusCode.REQUEST_TIMEOUT) and msg.subject == reply:
                description = msg.headers.get(Header.DESCRIPTION, "") if msg.headers else ""
                log.info("pull request for %s ended: %s %s", self.subject, status, description)
                await asyncio.sleep(PAUSE_AFTER_REFUSAL)

    def wake(self) -> None:
        """End the wait for the next command now (the caller is stopping)."""
        self._arrived.put_nowait(None)

    async def stop(self) -> None:
        """Hand back every command the server sent or still may send, then give up the inbox.

        Until each open request has ended (its expiry at the latest), the server may still send a
        command on it, and one in flight when the inbox goes would stay unacked until the ack wait,
        holding the partition. So the feed waits for them, keeping what comes meanwhile (handed
        back at once, it would come straight back on a request still open); then it negatively
        acks what it kept, and each such command goes at once to whichever worker asks next."""
        kept: list[Msg] = []
        loop = asyncio.get_running_loop()
        while True:
            self._forget_expired()
            if not self._open:
                break
            latest = max(sent for sent, _ in self._open.values())
            try:
                async with asyncio.timeout(max(0.0, latest + PULL_EXPIRES + ANSWER_GRACE - loop.time())):
                    msg = await self._arrived.get()
            except TimeoutError:
                continue  # `_forget_expired` drops what is past the grace
            if msg is None:
                continue
            self._answered(msg, None)
            if status_of(msg) is None:
                kept.append(msg)
        while not self._arrived.empty():
            msg = self._arrived.get_nowait()
            if msg is not None and status_of(msg) is None:
                kept.append(msg)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        for msg in kept:
            with contextlib.suppress(Exception):
                await msg.nak()
