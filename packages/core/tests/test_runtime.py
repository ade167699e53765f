import pytest

from openmemory_core.errors import ConfigurationError
from openmemory_core.runtime import BUS, GRAPH, VECTORS, embedded_plan, registered_components, resolve_targets
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
