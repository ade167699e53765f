"""`kv.asked_again`, the read asked again when it may have been lost: which answer it takes, which
error it gives, and that it leaves no attempt behind. The attempts here are plain coroutines that
answer, fail or hang on cue (what a NATS request does is in `test_lost_messages.py`)."""

import asyncio
import gc
import time
from typing import Any

import pytest

from openmemory_core.kv import asked_again


class Lost(Exception):
    """An attempt that got no answer."""


class Refused(Exception):
    """An answer that is an error (the search service said the input is bad)."""


def lost(error: BaseException) -> bool:
    return isinstance(error, Lost)


class Attempts:
    """Attempt n does `plan[n]`: ("answer", after, value), ("lose", after) or ("refuse", after)."""

    def __init__(self, *plan: tuple[Any, ...]) -> None:
        self.plan = plan
        self.started: list[float] = []
        self.cancelled = 0
        self.all_started = asyncio.Event()

    async def __call__(self, limit: float) -> str:
        step = self.plan[len(self.started)]
        self.started.append(limit)
        if len(self.started) == len(self.plan):
            self.all_started.set()
        try:
            await asyncio.sleep(min(step[1], limit))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if step[0] == "answer" and step[1] <= limit:
            return str(step[2])
        if step[0] == "refuse":
            raise Refused
        raise Lost


async def test_an_error_that_is_an_answer_is_raised_at_once() -> None:
    attempts = Attempts(("refuse", 0.01), ("answer", 0.01, "never"))
    with pytest.raises(Refused):
        await asked_again(attempts, 2.0, 0.5, lost, attempts=2)
    assert len(attempts.started) == 1


async def test_a_slow_first_answer_is_taken_and_the_second_attempt_cancelled() -> None:
    attempts = Attempts(("answer", 0.3, "first"), ("answer", 5.0, "second"))
    started = time.monotonic()
    assert await asked_again(attempts, 2.0, 0.1, lost, attempts=2) == "first"
    assert time.monotonic() - started < 2.0  # not the second's 5 s
    await asyncio.sleep(0)  # the cancellation reaches the attempt
    assert len(attempts.started) == 2 and attempts.cancelled == 1
    assert attempts.started[1] < attempts.started[0]  # the second gets what is left of the wait


async def test_when_every_attempt_is_lost_the_last_error_comes_within_the_wait() -> None:
    attempts = Attempts(("lose", 10.0), ("lose", 10.0), ("lose", 10.0), ("answer", 0, "never"))
    started = time.monotonic()
    with pytest.raises(Lost):
        await asked_again(attempts, 0.6, 0.1, lost, attempts=3)
    assert 0.5 <= time.monotonic() - started < 3.0  # not the attempts' 10 s
    assert len(attempts.started) == 3  # never more than `attempts`


async def test_a_fast_loss_is_asked_again_after_the_pause_only() -> None:
    attempts = Attempts(("lose", 0.0), ("answer", 0.0, "second"))
    started = time.monotonic()
    assert await asked_again(attempts, 6.0, 3.0, lost, attempts=2, pause=0.2) == "second"
    assert 0.2 <= time.monotonic() - started < 2.5  # after the pause, not after `again_after`


async def test_the_callers_cancellation_cancels_every_attempt() -> None:
    attempts = Attempts(("answer", 5.0, "a"), ("answer", 5.0, "b"))
    call = asyncio.create_task(asked_again(attempts, 10.0, 0.05, lost, attempts=2))
    await asyncio.wait_for(attempts.all_started.wait(), 2.0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0)
    assert attempts.cancelled == 2


async def test_a_loss_beside_an_answer_leaves_no_unread_error() -> None:
    """The first attempt is lost in the same moment the second answers: its error is read all the
    same, so the loop never reports an exception nobody retrieved."""
    unread: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unread.append(context))
    try:
        for _ in range(20):
            attempts = Attempts(("lose", 0.1), ("answer", 0.05, "second"))
            assert await asked_again(attempts, 2.0, 0.05, lost, attempts=2) == "second"
        gc.collect()
        await asyncio.sleep(0)
        assert unread == []
    finally:
        loop.set_exception_handler(None)
