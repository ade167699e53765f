import json
from pathlib import Path

import pytest

from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.errors import ConfigurationError
from openmemory_core.runtime import (
    BOOT_ID,
    BUS,
    GRAPH,
    VECTORS,
    Runtime,
    embedded_plan,
    note_running,
    rebuild_marker,
    registered_components,
    resolve_targets,
    running_record,
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


@pytest.mark.parametrize("threads", [1, 2, 0])
async def test_the_embedder_runs_on_the_model_threads_set(
    nats_url: str, tmp_path: Path, threads: int
) -> None:
    """`OPENMEMORY_MODEL_THREADS`: a container sees every core of its node, and onnxruntime's
    default takes one thread per core whatever the pod's CPU share; 0 leaves it that default."""
    settings = Settings(core=CoreSettings(data_dir=tmp_path, nats_url=nats_url, model_threads=threads))
    runtime = Runtime(settings, resolve_targets("ingest", registered_components()), nats_url=nats_url)
    try:
        embedder = await runtime.embedder()
        assert isinstance(embedder, MiniLMEmbedder)
        # 0 is left to onnxruntime, which reports it as 0 (its own choice)
        assert embedder._session.get_session_options().intra_op_num_threads == threads
    finally:
        await runtime.close()


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_a_model_thread_count_out_of_bounds_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OPENMEMORY_MODEL_THREADS", value)
    with pytest.raises(ValueError, match="model_threads"):
        CoreSettings()


@pytest.mark.skipif(not BOOT_ID.exists(), reason="the kernel names its boot only on Linux")
def test_a_run_that_ended_with_the_machine_is_told_and_rebuilt_only_where_stores_are_embedded(
    tmp_path: Path,
) -> None:
    """The run's record names the boot it was written in. A record from another boot, or one cut
    short as it was written (unreadable), means the machine went down mid-run: the embedded stores
    may miss their last seconds, so the rebuild marker is left. Stores on servers of their own
    sync themselves: no marker. A record of this very boot (a process killed while the machine
    ran on) is no cut."""
    record, marker = running_record(tmp_path), rebuild_marker(tmp_path)
    assert note_running(tmp_path) is False and not marker.exists()  # the first run here
    assert json.loads(record.read_text())["boot_id"] == BOOT_ID.read_text().strip()
    assert note_running(tmp_path) is False and not marker.exists()  # killed, this boot
    record.write_text(json.dumps({"pid": 1, "boot_id": "another-boot"}))
    assert note_running(tmp_path, stores_embedded=False) is True and not marker.exists()
    record.write_text(json.dumps({"pid": 1, "boot_id": "another-boot"}))
    assert note_running(tmp_path) is True and "another-boot" in marker.read_text()
    marker.unlink()
    record.write_text("")  # the cut came as the record was written
    assert note_running(tmp_path) is True and marker.exists()
    assert json.loads(record.read_text())["boot_id"] == BOOT_ID.read_text().strip()
