"""The same scenarios with the production stores in containers: NATS, Qdrant and Neo4j.

Runs wherever a Docker engine is available (testcontainers); skips with the reason elsewhere, or
fails there with OPENMEMORY_REQUIRE_DOCKER=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import ToolFailed, add_search_list_delete, mcp_client, new_key

from openmemory_testing import RunningSystem, start_system, unique
from openmemory_testing.plugin import docker_missing

pytestmark = pytest.mark.docker

NEO4J_PASSWORD = "openmemory-e2e"


@pytest.fixture(scope="module")
def store_urls() -> Iterator[dict[str, str]]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    containers: list[Any] = []
    try:
        nats = DockerContainer("nats:2.11.9-alpine").with_command("-js").with_exposed_ports(4222)
        qdrant = DockerContainer("qdrant/qdrant:v1.16.2").with_exposed_ports(6333)
        neo4j = (
            DockerContainer("neo4j:5.26.12-community")
            .with_env("NEO4J_AUTH", f"neo4j/{NEO4J_PASSWORD}")
            .with_exposed_ports(7687)
        )
        for container, ready in (
            (nats, "Server is ready"),
            (qdrant, "Qdrant gRPC listening"),
            (neo4j, "Started."),
        ):
            container.start()
            containers.append(container)
            wait_for_logs(container, ready, timeout=120)
    except Exception as exc:  # docker.errors.DockerException where no engine runs
        for container in containers:
            container.stop()
        docker_missing("container e2e tests", exc)

    def address(container: Any, port: int) -> str:
        return f"{container.get_container_host_ip()}:{container.get_exposed_port(port)}"

    try:
        yield {
            "OPENMEMORY_NATS_URL": f"nats://{address(nats, 4222)}",
            "OPENMEMORY_QDRANT_URL": f"http://{address(qdrant, 6333)}",
            "OPENMEMORY_GRAPH_URL": f"bolt://{address(neo4j, 7687)}",
            "OPENMEMORY_GRAPH_USER": "neo4j",
            "OPENMEMORY_GRAPH_PASSWORD": NEO4J_PASSWORD,
        }
    finally:
        for container in containers:
            container.stop()


@pytest.fixture(scope="module")
def on_containers(
    tmp_path_factory: pytest.TempPathFactory, store_urls: dict[str, str]
) -> Iterator[RunningSystem]:
    system = start_system(tmp_path_factory.mktemp("containers") / "data", extra_env=store_urls)
    yield system
    system.stop()


async def test_add_search_list_delete_on_production_stores(on_containers: RunningSystem) -> None:
    await add_search_list_delete(on_containers)


async def test_isolation_on_production_stores(on_containers: RunningSystem) -> None:
    owner, stranger = new_key(on_containers, unique()), new_key(on_containers, unique())
    async with mcp_client(on_containers.mcp_url, owner) as client:
        added = await client.call("add_memories", text="My passport number ends in 42.")
    async with mcp_client(on_containers.mcp_url, stranger) as client:
        assert await client.texts("passport") == []
        with pytest.raises(ToolFailed, match="no such memories"):
            await client.call("delete_memories", memory_ids=[added["results"][0]["id"]])


async def test_a_restart_keeps_data_on_production_stores(on_containers: RunningSystem) -> None:
    key = new_key(on_containers, unique())
    async with mcp_client(on_containers.mcp_url, key) as client:
        await client.call("add_memories", text="I keep bees in my garden.")
    assert on_containers.stop() == 0
    restarted = start_system(on_containers.data_dir, extra_env=on_containers.env)
    try:
        async with mcp_client(restarted.mcp_url, key) as client:
            assert await client.texts("what hobby do I have outdoors?") == [
                "User keeps bees in User's garden."
            ]
    finally:
        restarted.stop()
