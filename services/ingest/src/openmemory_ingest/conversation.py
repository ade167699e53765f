"""Which turn came just before: what one app adds verbatim in one sitting is one conversation.

An answer ("Melanie: A sunset, last week.") rarely repeats its question's words ("Caroline: What did
you paint?"). Linking each turn to the one the same app added just before it lets keyword search
find the answer by the question's words, and lets search bring up the neighbour of a good hit.
Only memories kept verbatim (`infer=false`: a transcript's turns) are linked; extracted facts
("User is allergic to peanuts") stand on their own.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from openmemory_core import contracts as c

GAP = timedelta(minutes=30)  # adds further apart than this start a new conversation
TOLD_GAP = timedelta(hours=6)  # ... and so do adds that say they happened this far apart
CONTEXT_CHARS = 1_000
TRACKED = 10_000  # conversations remembered per ingest process


@dataclass(frozen=True)
class _Last:
    command: c.AddCommand
    before: c.Memory | None  # what the command's memory followed, for a redelivery
    memory: c.Memory  # the memory the command added


class Conversations:
    """The last memory each user's app added, in this process, so that the next one can follow it.

    A user's commands arrive in order on one partition, so the last one seen is the one just before.
    After a restart the first add of a conversation is not linked: links help ranking, and nothing
    else depends on them.
    """

    def __init__(self, tracked: int = TRACKED) -> None:
        self.tracked = tracked
        self._last: OrderedDict[tuple[str, str], _Last] = OrderedDict()

    def before(self, command: c.AddCommand) -> c.Memory | None:
        """The memory the command's new memory follows, if it is a verbatim turn of the same
        conversation; None for extracted facts."""
        if command.infer:
            return None
        last = self._last.get((command.user_id, command.app))
        if last is None:
            return None
        if last.command.request_id == command.request_id:
            return last.before  # a redelivery links as the first delivery did
        if not timedelta(0) <= command.issued_at - last.command.issued_at <= GAP:
            return None
        told, last_told = command.occurred_at, last.command.occurred_at
        if (told is None) != (last_told is None):
            return None
        if told is not None and last_told is not None and abs(told - last_told) > TOLD_GAP:
            return None
        return last.memory

    def added(self, command: c.AddCommand, before: c.Memory | None, last: c.Memory) -> None:
        """A verbatim turn was stored (extracted facts are not tracked)."""
        if command.infer:
            return
        key = (command.user_id, command.app)
        self._last[key] = _Last(command, before, last)
        self._last.move_to_end(key)
        while len(self._last) > self.tracked:
            self._last.popitem(last=False)


def following(memory: c.Memory, before: c.Memory | None) -> c.Memory:
    """The memory linked to the one said just before it, with that one's text as its context."""
    if before is None:
        return memory
    return memory.model_copy(update={"previous": before.id, "context": before.text[:CONTEXT_CHARS]})
