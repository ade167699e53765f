from pathlib import Path

import pytest

from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.errors import ConfigurationError
from openmemory_core.runtime import (
    BUS,
    GRAPH,
    VECTORS,
    Runtime,
    embedded_plan,
    registered_components,
    resolve_targets,
)
from openmemory_core.settings import CoreSettings, Settings


def test_every_service_is_registered() -> None:
    assert set(registered_components()) == {"gateway", "ingest", "search", "admin"}


def test_targets_resolve_in_start_order() -> None:
    registry = registered_components()
    assert [c.name for c in resolve_targets("all", registry)] == ["search", "ingest", "gateway", "admin"]
    assert [c.name for c in resolve_targets("gateway,search", registry)] == ["search", "gateway"]
    with pytest.raises(ConfigurationError, match="unknown target querier"):
        resolve_targets("querier", registry)


def test_embedded_stores_only_where_every_user_runs() -> None:
    registry = registered_components()
    plain = Settings(core=CoreSettings())
    assert embedded_plan(plain, resolve_targets("all", registry), registry) == {BUS, VECTORS, GRAPH}
    with pytest.raises(ConfigurationError, match="OPENMEMORY_NATS_URL"):
        embedded_plan(plain, resolve_targets("gateway", registry), registry)
    with_bus = Settings(core=CoreSettings(nats_url="nats://x:4222"))
    assert embedded_plan(with_bus, resolve_targets("ingest,search", registry), registry) == {VECTORS, GRAPH}
    with pytest.raises(ConfigurationError, match="OPENMEMORY_QDRANT_URL"):
        embedded_plan(with_bus, resolve_targets("ingest", registry), registry)
    assert embedded_plan(with_bus, resolve_targets("gateway,admin", registry), registry) == set()


@pytest.mark.parametrize(
    ("target", "spins"), [("search", True), ("all", False), ("ingest,search", False), ("ingest", False)]
)
async def test_the_embedder_spins_only_in_a_process_that_searches_without_ingesting(
    nats_url: str, tmp_path: Path, target: str, spins: bool
) -> None:
    """Beside ingest, onnxruntime's spinning threads take a core from extraction and the event loop:
    hostile adds and another user's searches in one process were slower with them."""
    settings = Settings(core=CoreSettings(data_dir=tmp_path, nats_url=nats_url))
    runtime = Runtime(settings, resolve_targets(target, registered_components()), nats_url=nats_url)
    try:
        embedder = await runtime.embedder()
        assert isinstance(embedder, MiniLMEmbedder) and embedder.spinning is spins
    finally:
        await runtime.close()
