"""CPU work on a message's text: in a worker thread, unless the text is short enough that the
hand-off would cost more than the work.

A thread hop costs about 40 µs of CPU on an idle machine, more under load (a wake-up, the GIL
passed each way, the loop woken through its self-pipe). A verbatim add of a 50-character fact made
three of them for work that costs less: its analysis (about 90 µs), the instruction check (20 µs)
and its keyword vector (25 µs). Work over at most `INLINE_CHARS` characters runs on the event loop;
the count is all the text the work reads (the instruction check reads the message and its facts,
so a verbatim add's text twice; the keyword vector the memory's text and its context, a
conversation's previous turn). 200 characters cost 0.1-0.45 ms for all three, texts built to be
slow included (2026-12-04, bench/README.md "Ingest overhead"), and a long text, whose work grows
with its length, still never holds the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: Characters of text at most for work done on the event loop.
INLINE_CHARS = 200


async def text_work(chars: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` over `chars` characters of text: on the loop up to `INLINE_CHARS`,
    in a worker thread beyond."""
    if chars <= INLINE_CHARS:
        return work(*args, **kwargs)
    return await asyncio.to_thread(work, *args, **kwargs)
