"""The graph store: memories, the entities they mention, per user.

`GraphStore` is the interface ingest and search use, with two adapters that run the same Cypher
(parameterised, portable: MERGE … ON CREATE SET, UNWIND, fixed relationship types):
`FalkorDBGraphStore` (the embedded default, through FalkorDB's own client) and `Neo4jGraphStore`
(the `neo4j` driver). `open_graph_store` picks one by the URL's scheme.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlparse

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from openmemory_core.contracts import Memory
from openmemory_core.errors import ConfigurationError, Unavailable
from openmemory_core.telemetry import store_call

GRAPH_NAME = "openmemory"
FALKORDB_SCHEMES = ("falkordb", "redis")
NEO4J_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")


def entity_key(name: str) -> str:
    """Entities are merged per user by their normalised name."""
    return " ".join(name.split()).casefold()


class GraphStore(Protocol):
    async def ensure_schema(self) -> None: ...
    async def add_memory(self, memory: Memory) -> None: ...
    async def delete_memories(self, user_id: str, memory_ids: list[str]) -> None: ...
    async def entities_of(self, user_id: str, memory_id: str) -> list[str]: ...
    async def memories_mentioning(self, user_id: str, names: list[str], limit: int) -> list[str]: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


ADD_MEMORY = """
MERGE (m:Memory {id: $id})
SET m.user_id = $user_id, m.app = $app, m.created_at = $created_at
WITH m
UNWIND $entities AS entity
MERGE (e:Entity {user_id: $user_id, key: entity.key})
ON CREATE SET e.name = entity.name, e.created_at = $created_at
MERGE (m)-[:MENTIONS]->(e)
"""

DELETE_MEMORIES = """
MATCH (m:Memory {user_id: $user_id})
WHERE m.id IN $ids
OPTIONAL MATCH (m)-[:MENTIONS]->(e:Entity)
WITH m, collect(e) AS entities
DETACH DELETE m
WITH entities
UNWIND entities AS e
WITH DISTINCT e
OPTIONAL MATCH (e)<-[r:MENTIONS]-(:Memory)
WITH e, count(r) AS uses
WHERE uses = 0
DETACH DELETE e
"""

ENTITIES_OF = """
MATCH (m:Memory {id: $id, user_id: $user_id})-[:MENTIONS]->(e:Entity)
RETURN e.name ORDER BY e.name
"""

MEMORIES_MENTIONING = """
MATCH (e:Entity {user_id: $user_id})<-[:MENTIONS]-(m:Memory)
WHERE e.key IN $keys
RETURN m.id, count(e) AS matched ORDER BY matched DESC LIMIT $limit
"""


def _add_params(memory: Memory) -> dict[str, Any]:
    return {
        "id": memory.id,
        "user_id": memory.user_id,
        "app": memory.app,
        "created_at": memory.created_at.isoformat(),
        "entities": [{"key": entity_key(n), "name": n} for n in memory.entities if entity_key(n)],
    }


class FalkorDBGraphStore:
    """`GraphStore` on FalkorDB through its own asyncio client."""

    def __init__(self, host: str, port: int, password: str | None = None) -> None:
        self._address = (host, port, password)
        self._db: Any = None
        self._graph: Any = None

    def _handle(self) -> Any:
        """Connect on first use, so a graph store that is down delays work instead of start-up."""
        if self._graph is None:
            from falkordb.asyncio import FalkorDB

            host, port, password = self._address
            try:
                db = FalkorDB(host=host, port=port, password=password, socket_timeout=10)
            except (ConnectionError, OSError) as exc:
                raise Unavailable(f"the graph store at {host}:{port} is not reachable: {exc}") from exc
            self._db, self._graph = db, db.select_graph(GRAPH_NAME)
        return self._graph

    async def _query(self, operation: str, cypher: str, params: dict[str, Any]) -> list[list[Any]]:
        try:
            async with store_call("falkordb", operation):
                result = await self._handle().query(cypher, params)
        except (ConnectionError, OSError, TimeoutError, RedisConnectionError, RedisTimeoutError) as exc:
            raise Unavailable(f"the graph store is not reachable: {exc}") from exc
        rows: list[list[Any]] = result.result_set
        return rows

    async def ensure_schema(self) -> None:
        for label, prop in (
            ("Memory", "id"),
            ("Memory", "user_id"),
            ("Entity", "user_id"),
            ("Entity", "key"),
        ):
            try:
                await self._handle().query(f"CREATE INDEX FOR (n:{label}) ON (n.{prop})")
            except Unavailable:
                raise
            except Exception as exc:  # FalkorDB answers an error when the index exists already
                if "already indexed" not in str(exc) and "already exists" not in str(exc):
                    raise Unavailable(f"the graph store refused its schema: {exc}") from exc

    async def add_memory(self, memory: Memory) -> None:
        await self._query("add_memory", ADD_MEMORY, _add_params(memory))

    async def delete_memories(self, user_id: str, memory_ids: list[str]) -> None:
        if memory_ids:
            await self._query("delete_memories", DELETE_MEMORIES, {"user_id": user_id, "ids": memory_ids})

    async def entities_of(self, user_id: str, memory_id: str) -> list[str]:
        rows = await self._query("entities_of", ENTITIES_OF, {"id": memory_id, "user_id": user_id})
        return [str(r[0]) for r in rows]

    async def memories_mentioning(self, user_id: str, names: list[str], limit: int) -> list[str]:
        keys = [entity_key(n) for n in names if entity_key(n)]
        if not keys:
            return []
        rows = await self._query(
            "memories_mentioning", MEMORIES_MENTIONING, {"user_id": user_id, "keys": keys, "limit": limit}
        )
        return [str(r[0]) for r in rows]

    async def ping(self) -> bool:
        try:
            await self._handle().query("RETURN 1")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        if self._db is not None:
            await self._db.aclose()


NEO4J_SCHEMA = (
    "CREATE CONSTRAINT om_memory_id IF NOT EXISTS FOR (m:Memory) REQUIRE m.id IS UNIQUE",
    "CREATE CONSTRAINT om_entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.user_id, e.key) IS UNIQUE",
    "CREATE INDEX om_memory_user IF NOT EXISTS FOR (m:Memory) ON (m.user_id)",
)


class Neo4jGraphStore:
    """`GraphStore` on Neo4j through the official async driver; constraints made at start-up."""

    def __init__(self, uri: str, user: str | None, password: str | None, database: str | None = None) -> None:
        from neo4j import AsyncGraphDatabase

        auth = (user or "neo4j", password) if password else None
        self._driver = AsyncGraphDatabase.driver(uri, auth=auth)
        self._database = database

    async def _query(self, operation: str, cypher: str, params: dict[str, Any]) -> list[list[Any]]:
        from neo4j.exceptions import ServiceUnavailable, SessionExpired

        try:
            async with store_call("neo4j", operation):
                records, _, _ = await self._driver.execute_query(cypher, params, database_=self._database)
        except (ServiceUnavailable, SessionExpired, OSError) as exc:
            raise Unavailable(f"the graph store is not reachable: {exc}") from exc
        return [list(record.values()) for record in records]

    async def ensure_schema(self) -> None:
        for statement in NEO4J_SCHEMA:
            await self._query("schema", statement, {})

    async def add_memory(self, memory: Memory) -> None:
        await self._query("add_memory", ADD_MEMORY, _add_params(memory))

    async def delete_memories(self, user_id: str, memory_ids: list[str]) -> None:
        if memory_ids:
            await self._query("delete_memories", DELETE_MEMORIES, {"user_id": user_id, "ids": memory_ids})

    async def entities_of(self, user_id: str, memory_id: str) -> list[str]:
        rows = await self._query("entities_of", ENTITIES_OF, {"id": memory_id, "user_id": user_id})
        return [str(r[0]) for r in rows]

    async def memories_mentioning(self, user_id: str, names: list[str], limit: int) -> list[str]:
        keys = [entity_key(n) for n in names if entity_key(n)]
        if not keys:
            return []
        params = {"user_id": user_id, "keys": keys, "limit": limit}
        rows = await self._query("memories_mentioning", MEMORIES_MENTIONING, params)
        return [str(r[0]) for r in rows]

    async def ping(self) -> bool:
        try:
            await self._query("ping", "RETURN 1", {})
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self._driver.close()


def open_graph_store(url: str, user: str | None = None, password: str | None = None) -> GraphStore:
    """The adapter for a graph URL: falkordb://host:port, or bolt:// / neo4j:// for Neo4j."""
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
