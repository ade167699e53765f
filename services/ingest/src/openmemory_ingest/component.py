"""Registers the ingest component with the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from nats.js.kv import KeyValue

from openmemory_core.errors import OpenMemoryError
from openmemory_core.llm_usage import LLMUsage
from openmemory_core.runtime import (
    BUS,
    EMBEDDER,
    GRAPH,
    VECTORS,
    Component,
    Running,
    Runtime,
    rebuild_marker,
)
from openmemory_core.settings import Settings
from openmemory_core.stored_settings import effective_llm, load, load_review
from openmemory_ingest.extraction import build_extractor

if TYPE_CHECKING:
    from openmemory_core.watched import WatchedBucket
    from openmemory_ingest.consolidator import Consolidator
    from openmemory_ingest.service import IngestService
    from openmemory_ingest.worker import IngestWorker

log = logging.getLogger(__name__)


class SettingsWatch:
    """Applies the extractor settings saved from the dashboard to a running ingest, within about
    `interval` seconds, without a restart. A setting that cannot be applied is logged, and the
    extractor in use stays."""

    def __init__(self, kv: KeyValue, base: Settings, service: IngestService, interval: float = 1.0) -> None:
        self.kv = kv
        self.base = base
        self.service = service
        self.interval = interval
        self.revision = -1
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def apply_if_changed(self) -> None:
        stored, revision = await load(self.kv)
        if revision == self.revision:
            return
        self.revision = revision
        try:
            settings = effective_llm(self.base, stored)
            self.service.extractor = build_extractor(settings)
        except OpenMemoryError as exc:
            log.error("the saved extractor settings cannot be applied: %s", exc.message)
            return
        self.service.similar = settings.similar_memories
        log.info("extractor settings applied (revision %s): %s", revision, settings.extractor)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.apply_if_changed()
            except Exception:
                log.warning("reading the saved settings failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-settings")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task


class _Ingest:
    def __init__(
        self,
        worker: IngestWorker,
        watch: SettingsWatch,
        consolidator: Consolidator,
        cached: WatchedBucket,
        rebuilding: asyncio.Task[None] | None,
    ) -> None:
        self.worker = worker
        self.watch = watch
        self.consolidator = consolidator
        self.cached = cached
        self.rebuilding = rebuilding

    async def stop(self) -> None:
        if self.rebuilding is not None:  # its marker stays: the next start rebuilds again
            self.rebuilding.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged
                await self.rebuilding
        await self.consolidator.stop()
        await self.watch.stop()
        await self.worker.stop()
        await self.cached.stop()


async def rebuild_then_start(
    service: IngestService,
    marker: Path,
    worker: IngestWorker,
    consolidator: Consolidator,
    retry_after: tuple[float, float] = (1.0, 60.0),
) -> None:
    """The machine went down while this data dir's stores were in use (`runtime.note_running` left
    `marker`): what ingest applied in its last seconds may never have reached the disk of the vector
    store and the graph, though its commands were acked. Both are rebuilt from the events, which
    are synced, before the worker takes its first command (none races the rebuild); meanwhile the
    doors are open, writes are accepted and wait, and search answers from what is rebuilt so far.
    A rebuild that fails (a store or the bus away) is logged and tried again, from 1 s apart up to
    a minute: a rebuild cut short leaves stores half cleared, so no command is applied on top of
    them. The marker goes once the rebuild is done, so one cut short by a stop runs again at the
    next start."""
    log.warning("rebuilding the vectors and the graph from the events, as the machine went down")
    wait, longest = retry_after
    while True:
        try:
            applied = await service.rebuild()
            break
        except Exception:
            log.exception(
                "the rebuild after the machine went down failed; trying again in %.0f s (ingest takes no "
                "command meanwhile: writes are accepted and wait)",
                wait,
            )
            await asyncio.sleep(wait)
            wait = min(wait * 2, longest)
    await asyncio.to_thread(marker.unlink, missing_ok=True)
    log.warning("after the machine went down: %s", applied.note)
    await worker.start()
    await consolidator.start()


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("ingest did not start after its rebuild", exc_info=task.exception())


async def start(runtime: Runtime) -> Running:
    # Imported here: registering every component must stay cheap for processes that run few.
    from openmemory_core.embeddings import EmbeddingLane, MiniLMEmbedder
    from openmemory_core.watched import WatchedBucket
    from openmemory_ingest.consolidator import Consolidator
    from openmemory_ingest.service import IngestService
    from openmemory_ingest.worker import IngestWorker

    embedder = await runtime.embedder()
    service = IngestService(
        await runtime.vectors(),
        await runtime.graph(),
        # concurrent adds share the local model's calls (an API embedder's run side by side)
        EmbeddingLane(embedder) if isinstance(embedder, MiniLMEmbedder) else embedder,
        build_extractor(effective_llm(runtime.settings, await runtime.stored_settings())),
        runtime.settings.llm.similar_memories,
    )
    bus = await runtime.bus()
    service.event_log = bus.events_after
    service.llm_usage = LLMUsage(await bus.llm_usage_bucket())
    settings_kv = await bus.settings_bucket()
    # read per add from a cache that every change of the bucket clears at once: applies at once
    cached = WatchedBucket(
        settings_kv, bus.nc, runtime.settings.ingest.settings_cache_seconds, remember_missing=True
    )
    await cached.start()
    service.review_policy = functools.partial(load_review, cached)
    watch = SettingsWatch(settings_kv, runtime.settings, service)
    await watch.apply_if_changed()
    watch.start()
    worker = IngestWorker(bus, service, runtime.settings.ingest)
    # merges near-duplicates and archives expired memories, on request and periodically
    consolidator = Consolidator(bus, service.vectors, runtime.settings.ingest, service.embedder.model_tag)
    marker = rebuild_marker(runtime.data_dir)
    if marker.exists():
        rebuilding = asyncio.create_task(
            rebuild_then_start(service, marker, worker, consolidator), name="ingest-rebuild"
        )
        rebuilding.add_done_callback(_report_failure)
        return _Ingest(worker, watch, consolidator, cached, rebuilding)
    await worker.start()
    await consolidator.start()
    return _Ingest(worker, watch, consolidator, cached, None)


component = Component(name="ingest", uses=frozenset({BUS, VECTORS, GRAPH, EMBEDDER}), start=start, order=20)
