"""Where memories are kept: the vector store (`vectors`: the interface; `qdrant`, `edge`: the
engines) and the graph store (`graph`: the interface and its FalkorDB and Neo4j adapters).

Only ingest and search use them. The factories pick an adapter from the settings and import its
client library only then, so a process that uses one engine never loads the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from openmemory_core.errors import ConfigurationError

if TYPE_CHECKING:
    from openmemory_core.stores.graph import GraphStore
    from openmemory_core.stores.vectors import VectorStore

FALKORDB_SCHEMES = ("falkordb", "redis")
NEO4J_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")


def open_vector_store(
    model_tag: str,
    dimension: int,
    data_dir: Path,
    url: str | None = None,
    api_key: str | None = None,
    engine: str = "edge",
) -> VectorStore:
    """A Qdrant server when a URL is set; otherwise the embedded engine under the data dir: Qdrant
    Edge (`vectors/`), or qdrant-client's local mode (`qdrant/`) when asked for or when a data dir
    already holds local-mode data and no Edge data."""
    legacy = (data_dir / "qdrant").exists() and not (data_dir / "vectors").exists()
    if url or engine == "local" or legacy:
        from openmemory_core.stores.qdrant import QdrantVectorStore

        return QdrantVectorStore.open(
            model_tag, dimension, url, None if url else data_dir / "qdrant", api_key
        )
    from openmemory_core.stores.edge import EdgeVectorStore

    return EdgeVectorStore(data_dir / "vectors", model_tag, dimension)


def open_graph_store(url: str, user: str | None = None, password: str | None = None) -> GraphStore:
    """The adapter for a graph URL: falkordb://host:port, or bolt:// / neo4j:// for Neo4j."""
    from openmemory_core.stores.graph import FalkorDBGraphStore, Neo4jGraphStore

    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    if parsed.scheme in FALKORDB_SCHEMES:
        return FalkorDBGraphStore(host, parsed.port or 6379, parsed.password or password)
    if parsed.scheme in NEO4J_SCHEMES:
        # Credentials travel as auth, never inside the address the driver may log.
        plain = parsed._replace(netloc=host + (f":{parsed.port}" if parsed.port else "")).geturl()
        return Neo4jGraphStore(plain, parsed.username or user, parsed.password or password)
    raise ConfigurationError(
        f"graph URL {url!r} is not supported: use falkordb://host:port, bolt://host:7687 or neo4j://host:7687"
    )
