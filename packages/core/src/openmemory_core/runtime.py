"""The single-binary runtime: one registry of components, any subset of them per process.

Components are found through the `openmemory.components` entry point group (each service
registers its own), so this package never imports a service. `--target all` is the composition
of every registered component; `--target ingest,search` runs two of them, and so on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from openmemory_core.bus import Bus
from openmemory_core.errors import ConfigurationError
from openmemory_core.servers import (
    SupervisedProcess,
    embedded_falkordb,
    embedded_nats,
    make_private,
    start_on_free_port,
    write_private,
)
from openmemory_core.settings import Settings
from openmemory_core.telemetry import configure_tracing, metrics_endpoint, shutdown_tracing

if TYPE_CHECKING:  # the stores' client libraries load only in processes that use them
    from openmemory_core.embeddings import Embedder
    from openmemory_core.stored_settings import StoredSettings
    from openmemory_core.stores.graph import GraphStore
    from openmemory_core.stores.vectors import VectorStore

log = logging.getLogger(__name__)

BUS, VECTORS, GRAPH, EMBEDDER = "bus", "vectors", "graph", "embedder"
SWITCH_INTERVAL_SECONDS = 0.001


class Running(Protocol):
    """A started component; `stop` drains its in-flight work."""

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Component:
    name: str
    uses: frozenset[str]
    start: Callable[[Runtime], Awaitable[Running]]
    order: int = 50  # lower starts first; readers and writers before the doors


def registered_components() -> dict[str, Component]:
    found: dict[str, Component] = {}
    for ep in entry_points(group="openmemory.components"):
        component = ep.load()
        if not isinstance(component, Component):
            raise ConfigurationError(f"entry point {ep.name!r} is not an openmemory Component")
        found[component.name] = component
    return found


def resolve_targets(target: str, registry: dict[str, Component]) -> list[Component]:
    names = [n.strip() for n in target.split(",") if n.strip()]
    if not names:
        raise ConfigurationError("--target is empty")
    if "all" in names:
        names = list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ConfigurationError(
            f"unknown target {', '.join(unknown)}; choose from all, {', '.join(sorted(registry))}"
        )
    return sorted((registry[n] for n in dict.fromkeys(names)), key=lambda c: (c.order, c.name))


def health_port(target: str, gateway: int, admin: int, ops: int) -> int:
    """Where a process serves `/healthz`: the gateway's port, else the dashboard's, else the ops port."""
    names = {n.strip() for n in target.split(",")}
    if names & {"all", "gateway"}:
        return gateway
    return admin if "admin" in names else ops


@dataclass
class HttpService:
    name: str
    app: ASGIApp
    host: str
    port: int


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runtime owns signals for every server and component in the process.
        yield


class Health:
    """What `/healthz` and `/readyz` report: every component this process started."""

    def __init__(self) -> None:
        self.started = False
        self.checks: dict[str, Callable[[], Awaitable[bool]]] = {}

    async def readiness(self) -> dict[str, bool]:
        results = {}
        for name, check in self.checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), 2.0)
            except Exception:
                results[name] = False
        return results

    def add_routes(self, app: Any, probes: bool = True) -> None:
        """Mount `/healthz` (up, every component started) and, with `probes`, `/readyz` (live
        checks) and `/metrics`."""

        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse(
                {"status": "ok" if self.started else "starting"}, 200 if self.started else 503
            )

        async def readyz(_: Request) -> JSONResponse:
            checks = await self.readiness()
            ready = self.started and all(checks.values())
            return JSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)

        app.add_route("/healthz", healthz, methods=["GET"])
        if probes:
            app.add_route("/readyz", readyz, methods=["GET"])
            app.add_route("/metrics", metrics_endpoint, methods=["GET"])


@dataclass
class Runtime:
    """The process: its settings, the shared resources its components use, its HTTP services."""

    settings: Settings
    components: list[Component]
    health: Health = field(default_factory=Health)
    http: list[HttpService] = field(default_factory=list)
    nats_url: str | None = None
    graph_url: str | None = None
    _bus: Bus | None = None
    _vectors: VectorStore | None = None
    _graph: GraphStore | None = None
    _embedder: Embedder | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def data_dir(self) -> Path:
        return self.settings.core.data_dir

    @property
    def names(self) -> set[str]:
        return {c.name for c in self.components}

    def serve_http(self, name: str, app: ASGIApp, host: str, port: int) -> None:
        self.http.append(HttpService(name, app, host, port))

    async def bus(self) -> Bus:
        async with self._lock:
            if self._bus is None:
                assert self.nats_url is not None
                name = "openmemory-" + "-".join(sorted(self.names))
                self._bus = await Bus.connect(self.nats_url, name, self.settings.core.partitions)
                bus = self._bus
                self.health.checks["nats"] = lambda: _true(bus.connected)
            return self._bus

    async def stored_settings(self) -> StoredSettings:
        """What was saved from the dashboard, on top of the environment's settings."""
        from openmemory_core.stored_settings import load

        stored, _ = await load(await (await self.bus()).settings_bucket())
        return stored

    async def embedder(self) -> Embedder:
        if self._embedder is None:
            from openmemory_core.stored_settings import effective_embedder

            settings = effective_embedder(self.settings, await self.stored_settings())
        async with self._lock:
            if self._embedder is None:
                from openmemory_core.embeddings import open_embedder

                # onnxruntime's threads spin between calls only in a process that searches and does
                # not ingest: there a lone query's 1.6 ms counts; beside ingest the spin takes a core
                # from extraction and the event loop (bench/README.md, "Threads that spin").
                searches = "search" in self.names and "ingest" not in self.names
                self._embedder = await asyncio.to_thread(
                    open_embedder, settings, searches, self.settings.core.model_threads
                )
            return self._embedder

    def use_embedder(self, embedder: Embedder) -> None:
        """Inject an embedder (tests, or another provider) before components start."""
        self._embedder = embedder

    async def vectors(self) -> VectorStore:
        embedder = await self.embedder()
        async with self._lock:
            if self._vectors is None:
                from openmemory_core.stores import open_vector_store

                core = self.settings.core
                key = core.qdrant_api_key.get_secret_value() if core.qdrant_api_key else None
                store = open_vector_store(
                    embedder.model_tag,
                    embedder.dimension,
                    self.data_dir,
                    core.qdrant_url,
                    key,
                    core.vector_engine,
                )
                await store.ensure_collection()
                self._vectors = store
            return self._vectors

    async def graph(self) -> GraphStore:
        async with self._lock:
            if self._graph is None:
                from openmemory_core.stores import open_graph_store

                assert self.graph_url is not None
                core = self.settings.core
                password = core.graph_password.get_secret_value() if core.graph_password else None
                store = open_graph_store(self.graph_url, core.graph_user, password)
                await store.ensure_schema()
                self._graph = store
                self.health.checks["graph"] = store.ping
            return self._graph

    async def drop_embedder(self) -> None:
        """Close the vector store and forget the embedder: the next use opens both from the settings
        then in force (a switch of embedding model)."""
        async with self._lock:
            if self._vectors is not None:
                with contextlib.suppress(Exception):
                    await self._vectors.close()
            self._vectors = None
            self._embedder = None

    async def close(self) -> None:
        for closer in (self._bus, self._vectors, self._graph):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.close()


async def _true(value: bool) -> bool:
    return value


def embedded_plan(settings: Settings, chosen: list[Component], registry: dict[str, Component]) -> set[str]:
    """Which embedded stores this process must start, or a clear error when it cannot.

    An embedded store serves one process, so it is used only when every component that needs it
    runs here; otherwise its URL must be configured.
    """
    here = {c.name for c in chosen}
    plan: set[str] = set()
    configured = {
        BUS: settings.core.nats_url,
        VECTORS: settings.core.qdrant_url,
        GRAPH: settings.core.graph_url,
    }
    env = {BUS: "OPENMEMORY_NATS_URL", VECTORS: "OPENMEMORY_QDRANT_URL", GRAPH: "OPENMEMORY_GRAPH_URL"}
    for resource, url in configured.items():
        needed_here = any(resource in c.uses for c in chosen)
        if url or not needed_here:
            continue
        users = {c.name for c in registry.values() if resource in c.uses}
        if users <= here:
            plan.add(resource)
        else:
            raise ConfigurationError(
                f"target {','.join(sorted(here))} needs {env[resource]}: the embedded {resource} store "
                f"serves one process, and {', '.join(sorted(users - here))} would run elsewhere"
            )
    return plan


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[IO[str]]:
    run_dir = data_dir / "run"
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle = os.fdopen(os.open(run_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise ConfigurationError(
            f"another OpenMemory process is running on {data_dir}; stop it or choose another --data-dir"
        ) from exc
    try:
        yield handle
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def endpoints_file(data_dir: Path) -> Path:
    return data_dir / "run" / "endpoints.json"


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux: new at each start of the machine


def running_record(data_dir: Path) -> Path:
    return data_dir / "run" / "running.json"


def rebuild_marker(data_dir: Path) -> Path:
    """Present while the stores must be rebuilt from the events (`note_running`); ingest removes it
    once it has."""
    return data_dir / "run" / "rebuild-pending"


def note_running(data_dir: Path, stores_embedded: bool = True) -> bool:
    """Record that OpenMemory runs on this data dir in this boot of the machine (removed by a clean
    stop), and say whether the previous run ended with the machine instead: its record is still
    there, written in another boot (a power cut, a kernel crash, a hard reset), or there and
    unreadable (cut short as it was written). A process killed while the machine runs on loses
    nothing (the kernel still writes back what it wrote); a machine that went down can lose what
    the embedded vector store and graph applied in their last seconds, which a rebuild recreates
    from the events (JetStream syncs each one to disk): with `stores_embedded` (this process runs
    the embedded vector store or graph) this leaves `rebuild_marker`, and ingest rebuilds before
    its first command; stores on servers of their own sync themselves. The record and the marker
    are synced to disk, so a cut right after a start is seen too. Only on Linux, where the kernel
    names its boot."""
    record = running_record(data_dir)
    try:
        boot = BOOT_ID.read_text().strip()
    except OSError:
        return False
    before: object = None
    try:
        before = json.loads(record.read_text()).get("boot_id")
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError):
        before = "an unknown boot (its record is unreadable)"
    write_private(record, json.dumps({"pid": os.getpid(), "boot_id": boot}), synced=True)
    went_down = isinstance(before, str) and before != boot
    if went_down and stores_embedded:
        write_private(
            rebuild_marker(data_dir), f"the machine went down during the run of boot {before}\n", synced=True
        )
        log.warning(
            "the machine went down while OpenMemory was running on %s (a power cut, a kernel crash or "
            "a hard reset): the vector store and the graph may miss what was applied in its last "
            "seconds. Nothing accepted is lost: ingest rebuilds them from the events before it takes "
            "new work (where ingest runs in another process, run `openmemory rebuild`)",
            data_dir,
        )
    return went_down


def read_endpoints(data_dir: Path) -> dict[str, Any] | None:
    """The running process's endpoints, for the CLI; None when nothing runs on this data dir."""
    from openmemory_core.servers import pid_alive

    path = endpoints_file(data_dir)
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if pid_alive(int(info.get("pid", 0))) else None


async def run(
    settings: Settings, target: str, on_ready: Callable[[Runtime], Awaitable[None]] | None = None
) -> None:
    """Start the chosen components and everything they need; run until SIGINT or SIGTERM."""
    # CPU work runs in worker threads (extraction, keyword vectors, import parsing), and the event
    # loop waits for the GIL each time it wakes; at 1 ms instead of 5 a worker hands it over sooner,
    # so the doors keep answering in tens of milliseconds while a long message is analysed.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    registry = registered_components()
    chosen = resolve_targets(target, registry)
    plan = embedded_plan(settings, chosen, registry)
    runtime = Runtime(settings, chosen, nats_url=settings.core.nats_url, graph_url=settings.core.graph_url)
    if configure_tracing("openmemory-" + "-".join(c.name for c in chosen)):
        log.info("exporting traces over OTLP")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    supervised: list[SupervisedProcess] = []
    running: list[Running] = []
    servers: list[tuple[_Server, asyncio.Task[None]]] = []
    with contextlib.ExitStack() as exits:
        make_private(settings.core.data_dir)  # 0700, and a 0077 umask for all this process writes
        if plan:
            exits.enter_context(data_dir_lock(settings.core.data_dir))
            note_running(settings.core.data_dir, stores_embedded=bool(plan & {VECTORS, GRAPH}))
        try:
            makers = {BUS: embedded_nats, GRAPH: embedded_falkordb}
            embedded = {
                store: make(settings.core.data_dir) for store, make in makers.items() if store in plan
            }
            for proc, _ in embedded.values():  # what a killed run left holding the stores goes first
                await proc.stop_leftover()
            for store, (proc, url) in embedded.items():
                # in `supervised` before it starts: stopped below even if its start fails half-way
                remake = functools.partial(makers[store], settings.core.data_dir)
                _, url = await start_on_free_port(proc, url, remake, keep=supervised)
                if store == BUS:
                    runtime.nats_url = url
                else:
                    runtime.graph_url = url
            for component in chosen:
                log.info("starting %s", component.name)
                running.append(await component.start(runtime))
            separate = settings.ops.separate or not runtime.http
            if separate:  # readiness and metrics on their own port, not on the public ones
                from starlette.applications import Starlette

                runtime.serve_http("ops", Starlette(), settings.ops.host, settings.ops.port)
            trusted_proxies = settings.core.forwarded_allow_ips.strip()
            for service in runtime.http:
                runtime.health.add_routes(service.app, probes=service.name == "ops" or not separate)
                server = _Server(
                    uvicorn.Config(
                        service.app,
                        host=service.host,
                        port=service.port,
                        log_level="warning",
                        lifespan="on",
                        timeout_graceful_shutdown=5,
                        # X-Forwarded-* from loopback would let a local client pick the address the
                        # failed-authentication throttle counts: only proxies named are trusted.
                        proxy_headers=bool(trusted_proxies),
                        forwarded_allow_ips=trusted_proxies or None,
                    )
                )
                servers.append((server, asyncio.create_task(server.serve(), name=f"http-{service.name}")))
            for server, task in servers:
                # uvicorn offers no event for "started"; poll it.
                while not server.started and not task.done():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                if task.done():
                    raise ConfigurationError(f"an HTTP server could not start: {task.exception()}")
            runtime.health.started = True
            if plan:
                _write_endpoints(runtime)
            if on_ready is not None:
                await on_ready(runtime)
            watch = asyncio.create_task(
                _watch_embedder(runtime, chosen, running, stop), name="embedder-watch"
            )
            await stop.wait()
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            log.info("stopping")
        finally:
            runtime.health.started = False
            for server, _ in servers:
                server.should_exit = True
            for _, task in servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 10.0)
            for handle in reversed(running):
                with contextlib.suppress(Exception):
                    await handle.stop()
            await runtime.close()
            for proc in reversed(supervised):
                await proc.stop()
            if plan:
                endpoints_file(settings.core.data_dir).unlink(missing_ok=True)
                running_record(settings.core.data_dir).unlink(missing_ok=True)  # stopped cleanly
            shutdown_tracing()


async def _watch_embedder(
    runtime: Runtime,
    chosen: list[Component],
    running: list[Running],
    stop: asyncio.Event,
    interval: float = 2.0,
) -> None:
    """Apply embedder settings saved from the dashboard without a restart of the process: stop the
    components that embed (ingest, search), reopen the embedder and its collection, start them
    again, and have ingest re-embed the memories of the previous model into the new collection."""
    from openmemory_core import contracts as c
    from openmemory_core.errors import OpenMemoryError
    from openmemory_core.stored_settings import effective_embedder

    embedding = [i for i, component in enumerate(chosen) if EMBEDDER in component.uses]
    if not embedding or runtime.nats_url is None:
        return
    current = effective_embedder(runtime.settings, await runtime.stored_settings())
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        try:
            wanted = effective_embedder(runtime.settings, await runtime.stored_settings())
        except OpenMemoryError as exc:
            log.error("the saved embedder settings cannot be applied: %s", exc.message)
            continue
        except Exception:
            log.warning("reading the saved settings failed", exc_info=True)
            continue
        if wanted == current or stop.is_set():
            continue
        old_tag = (await runtime.embedder()).model_tag
        log.info("embedder settings changed: restarting %s", ", ".join(chosen[i].name for i in embedding))
        for i in reversed(embedding):
            await running[i].stop()
        await runtime.drop_embedder()
        for i in embedding:
            running[i] = await chosen[i].start(runtime)
        current = wanted
        new_tag = (await runtime.embedder()).model_tag
        if (
            "ingest" in runtime.names
            and new_tag != old_tag
            and old_tag in await (await runtime.vectors()).model_tags()
        ):
            # The same request id in every ingest process: JetStream keeps one of these commands.
            request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"openmemory:reembed:{old_tag}:{new_tag}").hex
            command = c.ReembedCommand(from_model_tag=old_tag, request_id=request_id)
            await (await runtime.bus()).publish_command(command)
            log.info("re-embedding the memories of %s into %s", old_tag, new_tag)


def _write_endpoints(runtime: Runtime) -> None:
    info = {
        "pid": os.getpid(),
        "nats_url": runtime.nats_url,
        "graph_url": runtime.graph_url,
        "http": {s.name: f"http://{s.host}:{s.port}" for s in runtime.http},
    }
    # 0600: the URLs carry the embedded servers' credentials.
    write_private(endpoints_file(runtime.data_dir), json.dumps(info, indent=2))
