"""The pytest plugin with real servers for every test suite of the workspace
(`-p openmemory_testing.plugin`).

`nats-server` and FalkorDB run as real processes on free loopback ports with temporary data,
once per test session; tests isolate themselves with random user ids and names. Neo4j and a Qdrant
server run in containers where a Docker engine does, and their tests skip, saying why, elsewhere;
with `OPENMEMORY_REQUIRE_DOCKER=1` they fail instead (`docker_missing`). They carry the `docker`
mark: `pytest -m docker` runs them alone.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import pytest_asyncio

from openmemory_core.bus import Bus
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.servers import embedded_falkordb, embedded_nats, start_embedded
from openmemory_core.stores import open_graph_store
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_core.stores.vectors import VectorStore
from openmemory_testing.harness import RunningSystem, stop_all


@pytest_asyncio.fixture(scope="session")
async def nats_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    proc, url = await start_embedded(embedded_nats, tmp_path_factory.mktemp("nats"))
    yield url
    await proc.stop()


@pytest_asyncio.fixture
async def own_nats_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A nats-server for one test alone: nothing another test serves (a search service, a topology
    of other replicas) answers there."""
    proc, url = await start_embedded(embedded_nats, tmp_path_factory.mktemp("own-nats"))
    yield url
    await proc.stop()


@pytest_asyncio.fixture(scope="session")
async def graph_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    proc, url = await start_embedded(embedded_falkordb, tmp_path_factory.mktemp("falkordb"))
    yield url
    await proc.stop()


@pytest_asyncio.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    connected = await Bus.connect(nats_url, "test", partitions=4)
    yield connected
    await connected.close()


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest_asyncio.fixture
async def graph(graph_url: str) -> AsyncIterator[GraphStore]:
    store = open_graph_store(graph_url)
    await store.ensure_schema()
    yield store
    await store.close()


def docker_missing(tests: str, exc: Exception) -> NoReturn:
    """Where no Docker engine runs: skip `tests`, saying why, or fail them when OPENMEMORY_REQUIRE_DOCKER
    is set (a machine that must run them, CI with Docker). Every container fixture ends here."""
    reason = f"{tests} need a Docker engine (testcontainers): {type(exc).__name__}: {exc}"
    if os.environ.get("OPENMEMORY_REQUIRE_DOCKER"):
        pytest.fail(f"OPENMEMORY_REQUIRE_DOCKER is set, and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def neo4j_url() -> Iterator[str]:
    """A Neo4j server in a container, where a Docker engine runs."""
    from testcontainers.neo4j import Neo4jContainer

    try:
        container = Neo4jContainer("neo4j:5.26-community", password="openmemory-test")
        container.start()
    except Exception as exc:  # docker.errors.DockerException where no engine runs
        docker_missing("Neo4j tests", exc)
    try:
        host, port = container.get_container_host_ip(), container.get_exposed_port(7687)
        yield f"bolt://neo4j:openmemory-test@{host}:{port}"
    finally:
        container.stop()


@pytest_asyncio.fixture(params=["falkordb", pytest.param("neo4j", marks=pytest.mark.docker)])
async def graph_store(request: pytest.FixtureRequest, graph_url: str) -> AsyncIterator[GraphStore]:
    """The same behaviour tests run on FalkorDB (everywhere) and Neo4j (where Docker runs)."""
    url = graph_url if request.param == "falkordb" else request.getfixturevalue("neo4j_url")
    store = open_graph_store(url)
    await store.ensure_schema()
    yield store
    await store.close()


@pytest_asyncio.fixture
async def vectors(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[QdrantVectorStore]:
    """A fresh vector store for the real embedding model (qdrant-client local mode)."""
    store = QdrantVectorStore.open(embedder.model_tag, embedder.dimension, None, tmp_path / "vectors-local")
    await store.ensure_collection()
    yield store
    await store.close()


@pytest.fixture
def system_factory(tmp_path: Path) -> Iterator[list[RunningSystem]]:
    """Collects started systems and stops every one of them at the end of the test."""
    started: list[RunningSystem] = []
    yield started
    stop_all(started)


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    """A Qdrant server in a container, where a Docker engine runs."""
    from testcontainers.qdrant import QdrantContainer

    try:
        container = QdrantContainer("qdrant/qdrant:v1.16.2")
        container.start()
    except Exception as exc:  # docker.errors.DockerException where no engine runs
        docker_missing("Qdrant server tests", exc)
    try:
        yield f"http://{container.get_container_host_ip()}:{container.exposed_rest_port}"
    finally:
        container.stop()


@pytest_asyncio.fixture(params=["edge", "local", pytest.param("server", marks=pytest.mark.docker)])
async def vector_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    """The same behaviour tests run on Qdrant Edge, qdrant-client's local mode and a Qdrant server."""
    tag = f"test{tmp_path.name[-8:].replace('-', '')}-8"
    store: VectorStore
    if request.param == "edge":
        from openmemory_core.stores.edge import EdgeVectorStore

        store = EdgeVectorStore(tmp_path / "vectors", tag, 8)
    elif request.param == "local":
        store = QdrantVectorStore.open(tag, 8, None, tmp_path / "qdrant")
    else:
        url = request.getfixturevalue("qdrant_server_url")
        store = QdrantVectorStore.open(tag, 8, url, None)
    await store.ensure_collection()
    yield store
    await store.close()


CHROMIUM = os.environ.get("OPENMEMORY_TEST_CHROMIUM", "/usr/bin/chromium")


def _no_chromium() -> bool:
    return not Path(CHROMIUM).exists()


@pytest_asyncio.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's, driven by Playwright) for the dashboard's tests. Where none is
    installed they skip, unless OPENMEMORY_REQUIRE_BROWSER is set (CI), where they fail."""
    if _no_chromium() and not os.environ.get("OPENMEMORY_REQUIRE_BROWSER"):
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package (needs root)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield launched
        await launched.close()
