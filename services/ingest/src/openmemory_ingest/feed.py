"""One partition's commands, in order, with one pull request for many of them.

The ingest consumer of a partition lets one command out at a time (`max_ack_pending=1`: a user's
commands are applied in order, whatever the number of workers). A pull request may ask for more than
one: it stays open at the server until it has delivered `PULL_BATCH` commands or `PULL_EXPIRES`
seconds have passed, and the server hands it the next command as soon as the previous is acked. So
commands in a row cost one request between them, not one each (`fetch(1)` per command cost the
worker about 0.06 and nats-server 0.05 core-ms more per command; bench/README.md, "Ingest
overhead"). The order stays the consumer's: the next command comes only after the ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

#: Commands a pull request asks for at most.
PULL_BATCH = 64
#: How long a pull request stays open at the server.
PULL_EXPIRES = 1.0
#: How long past its expiry an answer to a request is waited for (the server answers an expired
#: request with status 408; a request lost in a reconnect gets no answer at all).
ANSWER_GRACE = 1.0
#: The server's "keep waiting" status (an idle heartbeat), the only one that does not end a request.
HEARTBEAT = "100"
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

    async def start(self) -> None:
        async def arrived(msg: Msg) -> None:
            self._arrived.put_nowait(msg)

        self._sub = await self.nc.subscribe(self.inbox, cb=arrived)

    async def requested(self) -> AsyncGenerator[Msg, None]:
        """Ask for up to `PULL_BATCH` commands and yield each as it comes, until the request ends. The
        caller acks (or naks) each before it asks for the next: the server sends no other meanwhile."""
        await self.nc.publish(self.subject, self.request, reply=self.inbox)
        left = PULL_BATCH
        while left:
            try:
                async with asyncio.timeout(PULL_EXPIRES + ANSWER_GRACE):
                    msg = await self._arrived.get()
            except TimeoutError:
                return  # no answer: the request was lost (a reconnect); the caller asks again
            if msg is None:
                return  # woken: the caller is stopping
            status = msg.headers.get("Status") if msg.headers else None
            if status == HEARTBEAT:
                continue
            if status is not None:  # 408 expired, or fulfilled; 409 refused
                if status != "408":
                    description = msg.headers.get("Description", "") if msg.headers else ""
                    log.info("pull request for %s ended: %s %s", self.subject, status, description)
                    await asyncio.sleep(PAUSE_AFTER_REFUSAL)
                return
            left -= 1
            yield msg

    def wake(self) -> None:
        """End the wait for the next command now (the caller is stopping)."""
        self._arrived.put_nowait(None)

    async def stop(self) -> None:
        """Give up the inbox, so the server drops the open request, and hand back any command it had
        already sent: negatively acked, it goes at once to whichever worker asks next, instead of
        after the ack wait."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        while not self._arrived.empty():
            msg = self._arrived.get_nowait()
            if msg is None or (msg.headers and msg.headers.get("Status")):
                continue
            with contextlib.suppress(Exception):
                await msg.nak()
