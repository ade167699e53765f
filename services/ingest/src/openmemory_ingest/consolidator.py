"""The consolidation job in the ingest process: reads a user's memories and vectors, plans
(`consolidation.plan`, in a worker thread), and publishes the plan as a `ConsolidateCommand` that
ingest applies. It answers `openmemory consolidate` and `POST /api/v1/consolidate` on
`om.consolidate` (request/reply, queue group `om-ingest`) and runs over every user every
`consolidate_interval_hours` (0: never). The periodic run archives expired temporary memories (what
the user asked for when adding them) and merges near-duplicates only with `consolidate_periodic_merge`:
a merge archives something the user said on the planner's judgement, so by default a person asks for
it (after a dry run, if they like).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.errors import InvalidInput, OpenMemoryError
from openmemory_core.settings import IngestSettings
from openmemory_core.stores.vectors import VectorStore
from openmemory_ingest.consolidation import SIMILARITY, command_of, mergeable, plan, report_of

log = logging.getLogger(__name__)

#: Ids per read of stored vectors, and vectors per batched neighbour query.
VECTOR_BATCH = 256
NEIGHBOUR_BATCH = 64
#: Memories read per page when the periodic run looks for the users there are.
USERS_PAGE = 512


class Consolidator:
    def __init__(
        self,
        bus: Bus,
        vectors: VectorStore,
        settings: IngestSettings,
        model_tag: str,
        similarity: float = SIMILARITY,
    ) -> None:
        self.bus = bus
        self.vectors = vectors
        self.settings = settings
        self.model_tag = model_tag
        self.similarity = similarity
        self._one_at_a_time = asyncio.Lock()  # a run is CPU and store work: one per process
        self._stopping = asyncio.Event()
        self._sub: Subscription | None = None
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._after_user: str | None = None  # where the periodic run goes on

    async def consolidate(self, request: c.ConsolidateRequest) -> c.ConsolidationReport:
        """Plan one user's consolidation and, unless it is a dry run, have ingest apply it."""
        if request.user_id == c.SYSTEM_USER:
            raise InvalidInput(f"{c.SYSTEM_USER!r} is not a user")
        async with self._one_at_a_time:
            started = time.perf_counter()
            cap = self.settings.consolidate_max_memories
            memories = await self.vectors.list_memories(request.user_id, cap + 1, active_only=True)
            truncated, memories = len(memories) > cap, memories[:cap]
            ids = [m.id for m in mergeable(memories, self.settings.temporary_days)] if request.merge else []
            vectors: dict[str, list[float]] = {}
            for start in range(0, len(ids), VECTOR_BATCH):
                vectors.update(
                    await self.vectors.dense_vectors(request.user_id, ids[start : start + VECTOR_BATCH])
                )
            neighbours: dict[str, list[tuple[str, float]]] = {}
            wanted = [i for i in ids if i in vectors]
            k = self.settings.consolidate_neighbours + 1  # a memory is its own nearest
            for start in range(0, len(wanted), NEIGHBOUR_BATCH):
                chunk = wanted[start : start + NEIGHBOUR_BATCH]
                found = await self.vectors.dense_neighbours(request.user_id, [vectors[i] for i in chunk], k)
                for memory_id, hits in zip(chunk, found, strict=True):
                    neighbours[memory_id] = [(h.memory.id, h.score) for h in hits]
            found_plan = await asyncio.to_thread(
                plan, memories, vectors, neighbours, c.now(), self.similarity, self.settings.temporary_days
            )
            report = report_of(request.user_id, len(memories), truncated, found_plan, request.dry_run)
            report.merge = request.merge
            command = None if request.dry_run else command_of(request.user_id, found_plan)
            if command is not None:
                report.request_id = command.request_id
                result = await self.bus.submit(command, request.wait)
                report.pending = result is None
                report.applied = result.results if result is not None else []
            report.seconds = round(time.perf_counter() - started, 3)
            return report

    # ---- request/reply -------------------------------------------------------------------------

    async def start(self) -> None:
        self._sub = await self.bus.nc.subscribe(
            c.CONSOLIDATE_SUBJECT, queue=c.INGEST_QUEUE_GROUP, cb=self._dispatch
        )
        if self.settings.consolidate_interval_hours > 0:
            self._loop = asyncio.create_task(self._periodically(), name="ingest-consolidation")

    async def _dispatch(self, msg: Msg) -> None:
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            request = c.ConsolidateRequest.model_validate_json(msg.data)
            report = await self.consolidate(request)
            reply = c.Reply(ok=True, result=report.model_dump(mode="json"))
        except ValidationError as exc:
            reply = c.Reply(
                ok=False, error_code=InvalidInput.code, error=f"a bad request: {exc.errors()[:3]}"
            )
        except OpenMemoryError as exc:
            reply = c.Reply(ok=False, error_code=exc.code, error=exc.message)
        except Exception as exc:
            log.exception("consolidation failed")
            reply = c.Reply(ok=False, error_code="internal", error=f"consolidation failed: {exc}")
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(reply.model_dump_json().encode())

    # ---- the periodic run ----------------------------------------------------------------------

    async def users(self) -> list[str]:
        """Every user with a memory in the current collection, in order (one pass over it)."""
        found: set[str] = set()
        offset: str | None = None
        while True:
            page, offset = await self.vectors.read_collection(self.model_tag, offset, USERS_PAGE)
            found.update(m.user_id for m in page if m.user_id != c.SYSTEM_USER)
            if offset is None or self._stopping.is_set():
                return sorted(found)

    async def run_once(self) -> int:
        """Consolidate up to `consolidate_max_users` users, going on after where the last run
        stopped; the number of memories changed."""
        users = await self.users()
        after = [u for u in users if self._after_user is None or u > self._after_user]
        todo = (after or users)[: self.settings.consolidate_max_users]
        changed = 0
        for user in todo:
            if self._stopping.is_set():
                break
            try:
                merge = self.settings.consolidate_periodic_merge
                report = await self.consolidate(c.ConsolidateRequest(user_id=user, merge=merge))
            except OpenMemoryError as exc:
                log.warning("consolidating a user failed: %s", exc.message)
                continue
            self._after_user = user
            changed += len(report.applied)
        if todo and todo[-1] == users[-1]:
            self._after_user = None  # every user had their turn: the next run starts over
        return changed

    async def _periodically(self) -> None:
        interval = self.settings.consolidate_interval_hours * 3600
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
            if self._stopping.is_set():
                return
            try:
                changed = await self.run_once()
                log.info("consolidation run done: %s memories changed", changed)
            except Exception:
                log.exception("the consolidation run failed; the next one will try again")

    async def stop(self) -> None:
        self._stopping.set()
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        for task in [*self._tasks, *([self._loop] if self._loop else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
