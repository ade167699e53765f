"""The graph store: memories, the entities they mention, per user.

`GraphStore` is the interface ingest and search use, with two adapters that run the same Cypher
(parameterised, portable: MERGE … ON CREATE SET, UNWIND, fixed relationship types):
`FalkorDBGraphStore` (the embedded default, through FalkorDB's own client) and `Neo4jGraphStore`
(the `neo4j` driver). `stores.open_graph_store` picks one by the URL's scheme.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from openmemory_core.contracts import Memory, Triple
from openmemory_core.errors import StoreUnavailable
from openmemory_core.telemetry import store_call

log = logging.getLogger(__name__)
# What a FalkorDB client raises when the store is down, refuses the connection or does not answer.
UNREACHABLE = (ConnectionError, OSError, TimeoutError, RedisConnectionError, RedisTimeoutError)

GRAPH_NAME = "openmemory"


def printable(name: str) -> str:
    """A name without control characters: FalkorDB's client writes parameters into the query text,
    where a NUL ends it."""
    return "".join(ch for ch in name if unicodedata.category(ch) != "Cc")


def entity_key(name: str) -> str:
    """Entities are merged per user by their normalised name."""
    return " ".join(printable(name).split()).casefold()


@dataclass(frozen=True)
class Neighbour:
    """One relation of an entity, seen from it."""

    relation: str
    direction: str  # "out" (entity -> other) or "in"
    entity: str
    memory_id: str
    valid_from: str | None
    valid_to: str | None


class GraphStore(Protocol):
    async def ensure_schema(self) -> None: ...
    async def add_memory(self, memory: Memory) -> None: ...
    async def close_superseded(self, memory: Memory, types: frozenset[str]) -> list[str]:
        """Close the open relations of `types` that `memory`'s relations replace; their memory ids."""
        ...

    async def replace(self, memory: Memory, olds: list[str]) -> None:
        """Record that `memory` replaces the memories `olds` (no functional relation said so): their
        open relations close as of `memory.when`, and deleting `memory` reopens them."""
        ...

    async def replaced_by(self, user_id: str, memory_ids: list[str]) -> list[str]:
        """The memories that these memories replace (through `replace`)."""
        ...

    async def delete_memories(self, user_id: str, memory_ids: list[str]) -> list[str]:
        """Remove the memories, their relations and orphaned entities; reopen relations they had
        closed. Returns the ids of memories whose relations were reopened or that they replaced."""
        ...

    async def neighbours(self, user_id: str, name: str) -> list[Neighbour]: ...
    async def relations_of_user(self, user_id: str, limit: int) -> list[Triple]: ...
    async def clear_user(self, user_id: str) -> None:
        """Remove every node and relation of one user (before a rebuild)."""
        ...

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
ON CREATE SET e.name = entity.name, e.kind = entity.kind, e.created_at = $created_at
MERGE (m)-[:MENTIONS]->(e)
"""

# Relations: one fixed relationship type with a `type` property (portable to both stores).
ADD_RELATIONS = """
UNWIND $relations AS rel
MERGE (s:Entity {user_id: $user_id, key: rel.subject_key})
ON CREATE SET s.name = rel.subject, s.kind = rel.subject_kind, s.created_at = $created_at
MERGE (o:Entity {user_id: $user_id, key: rel.object_key})
ON CREATE SET o.name = rel.object, o.kind = rel.object_kind, o.created_at = $created_at
MERGE (s)-[r:RELATES {type: rel.type, memory_id: $id}]->(o)
ON CREATE SET r.valid_from = $valid_from
"""

CLOSE_SUPERSEDED = """
UNWIND $relations AS rel
MATCH (s:Entity {user_id: $user_id, key: rel.subject_key})-[r:RELATES]->(o:Entity)
WHERE r.type = rel.type AND r.valid_to IS NULL AND o.key <> rel.object_key AND r.memory_id <> $id
SET r.valid_to = $valid_from, r.closed_by = $id
RETURN DISTINCT r.memory_id
"""

# A memory that replaces others without a functional relation ("switched from A to B"): the old
# memories' open relations close, and (:Memory)-[:REPLACES]->(:Memory) records it for a later delete.
REPLACE_MEMORIES = """
MATCH (n:Memory {id: $id, user_id: $user_id})
UNWIND $olds AS old
MATCH (o:Memory {id: old, user_id: $user_id})
MERGE (n)-[:REPLACES]->(o)
"""

CLOSE_RELATIONS_OF = """
MATCH (:Entity {user_id: $user_id})-[r:RELATES]->(:Entity)
WHERE r.memory_id IN $olds AND r.valid_to IS NULL
SET r.valid_to = $valid_from, r.closed_by = $id
"""

REPLACED_BY = """
MATCH (n:Memory {user_id: $user_id})-[:REPLACES]->(o:Memory)
WHERE n.id IN $ids
RETURN DISTINCT o.id
"""

REOPEN_CLOSED_BY = """
MATCH (s:Entity {user_id: $user_id})-[r:RELATES]->(:Entity)
WHERE r.closed_by IN $ids
SET r.valid_to = null, r.closed_by = null
RETURN DISTINCT r.memory_id
"""

DELETE_RELATIONS = """
MATCH (s:Entity {user_id: $user_id})-[r:RELATES]->(:Entity)
WHERE r.memory_id IN $ids
DELETE r
"""

DELETE_ORPHANS = """
MATCH (e:Entity {user_id: $user_id})
WHERE NOT (e)<-[:MENTIONS]-(:Memory) AND NOT (e)-[:RELATES]-(:Entity)
DELETE e
"""

NEIGHBOURS_OUT = """
MATCH (e:Entity {user_id: $user_id, key: $key})-[r:RELATES]->(o:Entity)
RETURN r.type, o.name, r.memory_id, r.valid_from, r.valid_to ORDER BY r.valid_from
"""

NEIGHBOURS_IN = """
MATCH (e:Entity {user_id: $user_id, key: $key})<-[r:RELATES]-(o:Entity)
RETURN r.type, o.name, r.memory_id, r.valid_from, r.valid_to ORDER BY r.valid_from
"""

RELATED_MEMORIES = """
MATCH (e:Entity {user_id: $user_id})-[r:RELATES]-(:Entity)
WHERE e.key IN $keys
RETURN DISTINCT r.memory_id LIMIT $limit
"""

DELETE_MEMORIES = """
MATCH (m:Memory {user_id: $user_id})
WHERE m.id IN $ids
DETACH DELETE m
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


USER_RELATIONS = """
MATCH (s:Entity {user_id: $user_id})-[r:RELATES]->(o:Entity)
RETURN s.name, r.type, o.name, r.memory_id, r.valid_from, r.valid_to
ORDER BY r.valid_from DESC LIMIT $limit
"""


def _add_params(memory: Memory) -> dict[str, Any]:
    kinds = memory.entity_kinds

    def kind(name: str) -> str:
        return "user" if name == "User" else kinds.get(name, "other")

    valid_from = memory.when.isoformat()
    return {
        "id": memory.id,
        "user_id": memory.user_id,
        "app": memory.app,
        "created_at": memory.created_at.isoformat(),
        "valid_from": valid_from,
        "entities": [
            {"key": entity_key(n), "name": printable(n), "kind": kind(n)}
            for n in memory.entities
            if entity_key(n)
        ],
        "relations": [
            {
                "subject": printable(r.subject), "subject_key": entity_key(r.subject),
                "subject_kind": kind(r.subject),
                "object": printable(r.object), "object_key": entity_key(r.object),
                "object_kind": kind(r.object),
                "type": printable(r.type),
            }
            for r in memory.relations
            if entity_key(r.subject) and entity_key(r.object)
        ],
    }  # fmt: skip


class GraphQueries:
    """The graph logic, on any store that runs parameterised Cypher through `_query`."""

    async def _query(self, operation: str, cypher: str, params: dict[str, Any]) -> list[list[Any]]:
        raise NotImplementedError

    async def add_memory(self, memory: Memory) -> None:
        params = _add_params(memory)
        await self._query("add_memory", ADD_MEMORY, params)
        if params["relations"]:
            await self._query("add_relations", ADD_RELATIONS, params)

    async def close_superseded(self, memory: Memory, types: frozenset[str]) -> list[str]:
        params = _add_params(memory)
        params["relations"] = [r for r in params["relations"] if r["type"] in types]
        if not params["relations"]:
            return []
        rows = await self._query("close_superseded", CLOSE_SUPERSEDED, params)
        return [str(r[0]) for r in rows]

    async def replace(self, memory: Memory, olds: list[str]) -> None:
        if not olds:
            return
        params = {
            "id": memory.id,
            "user_id": memory.user_id,
            "olds": olds,
            "valid_from": memory.when.isoformat(),
        }
        await self._query("replace_memories", REPLACE_MEMORIES, params)
        await self._query("close_relations_of", CLOSE_RELATIONS_OF, params)

    async def delete_memories(self, user_id: str, memory_ids: list[str]) -> list[str]:
        if not memory_ids:
            return []
        params = {"user_id": user_id, "ids": memory_ids}
        replaced = await self.replaced_by(user_id, memory_ids)
        reopened = [str(r[0]) for r in await self._query("reopen_relations", REOPEN_CLOSED_BY, params)]
        await self._query("delete_relations", DELETE_RELATIONS, params)
        await self._query("delete_memories", DELETE_MEMORIES, params)
        await self._query("delete_orphans", DELETE_ORPHANS, {"user_id": user_id})
        return [i for i in dict.fromkeys(replaced + reopened) if i not in memory_ids]

    async def replaced_by(self, user_id: str, memory_ids: list[str]) -> list[str]:
        if not memory_ids:
            return []
        rows = await self._query("replaced_by", REPLACED_BY, {"user_id": user_id, "ids": memory_ids})
        return [str(r[0]) for r in rows]

    async def entities_of(self, user_id: str, memory_id: str) -> list[str]:
        rows = await self._query("entities_of", ENTITIES_OF, {"id": memory_id, "user_id": user_id})
        return [str(r[0]) for r in rows]

    async def memories_mentioning(self, user_id: str, names: list[str], limit: int) -> list[str]:
        keys = [entity_key(n) for n in names if entity_key(n)]
        if not keys:
            return []
        params = {"user_id": user_id, "keys": keys, "limit": limit}
        rows = await self._query("memories_mentioning", MEMORIES_MENTIONING, params)
        related = await self._query("related_memories", RELATED_MEMORIES, params)
        return list(dict.fromkeys(str(r[0]) for r in [*rows, *related]))[:limit]

    async def neighbours(self, user_id: str, name: str) -> list[Neighbour]:
        params = {"user_id": user_id, "key": entity_key(name)}
        found = []
        for direction, cypher in (("out", NEIGHBOURS_OUT), ("in", NEIGHBOURS_IN)):
            for kind, other, memory_id, valid_from, valid_to in await self._query(
                "neighbours", cypher, params
            ):
                found.append(
                    Neighbour(str(kind), direction, str(other), str(memory_id), valid_from, valid_to)
                )
        return found

    async def relations_of_user(self, user_id: str, limit: int) -> list[Triple]:
        """The user's whole graph, newest relations first, at most `limit` of them."""
        rows = await self._query("user_relations", USER_RELATIONS, {"user_id": user_id, "limit": limit})
        return [
            Triple(subject=str(s), relation=str(t), object=str(o), memory_id=str(m), valid_from=f, valid_to=v)
            for s, t, o, m, f, v in rows
        ]

    async def clear_user(self, user_id: str) -> None:
        await self._query(
            "clear_user", "MATCH (n:Memory {user_id: $user_id}) DETACH DELETE n", {"user_id": user_id}
        )
        await self._query(
            "clear_user", "MATCH (n:Entity {user_id: $user_id}) DETACH DELETE n", {"user_id": user_id}
        )

    async def ping(self) -> bool:
        try:
            await self._query("ping", "RETURN 1", {})
        except Exception:
            return False
        return True


class FalkorDBGraphStore(GraphQueries):
    """`GraphStore` on FalkorDB through its own asyncio client."""

    def __init__(
        self, host: str, port: int, password: str | None = None, timeout: float = 10, schema_tries: int = 6
    ) -> None:
        self._address = (host, port, password)
        self._timeout = timeout  # seconds a query may take before the store counts as unreachable
        self._schema_tries = schema_tries
        self._db: Any = None
        self._graph: Any = None
        self._connecting = asyncio.Lock()

    async def _handle(self) -> Any:
        """Connect on first use, so a graph store that is down delays work instead of start-up. The
        client's constructor asks the server a question with a blocking socket (is it a cluster?),
        so it runs in a thread: a store that does not answer never holds up the event loop."""
        async with self._connecting:
            if self._graph is None:
                from falkordb.asyncio import FalkorDB

                host, port, password = self._address
                try:
                    db = await asyncio.to_thread(
                        FalkorDB, host=host, port=port, password=password, socket_timeout=self._timeout
                    )
                except UNREACHABLE as exc:
                    where = f"{host}:{port}"
                    raise StoreUnavailable(f"the graph store at {where} is not reachable: {exc}") from exc
                self._db, self._graph = db, db.select_graph(GRAPH_NAME)
            return self._graph

    async def _query(self, operation: str, cypher: str, params: dict[str, Any]) -> list[list[Any]]:
        try:
            async with store_call("falkordb", operation):
                result = await (await self._handle()).query(cypher, params)
        except UNREACHABLE as exc:
            raise StoreUnavailable(f"the graph store is not reachable: {exc}") from exc
        rows: list[list[Any]] = result.result_set
        return rows

    async def ensure_schema(self) -> None:
        for label, prop in (
            ("Memory", "id"),
            ("Memory", "user_id"),
            ("Entity", "user_id"),
            ("Entity", "key"),
        ):
            await self._create_index(label, prop)

    async def _create_index(self, label: str, prop: str) -> None:
        """One index; a store that stalls (a timeout) or is not up yet (refused: starting, or being
        restarted by its supervisor) is asked again rather than failing start-up."""
        for attempt in range(1, self._schema_tries + 1):
            try:
                await (await self._handle()).query(f"CREATE INDEX FOR (n:{label}) ON (n.{prop})")
                return
            except (StoreUnavailable, *UNREACHABLE) as exc:
                if attempt == self._schema_tries:
                    raise StoreUnavailable(f"the graph store did not answer: {exc}") from exc
                log.warning("the graph store did not answer creating its schema; asking again")
                await asyncio.sleep(1)
            except Exception as exc:  # FalkorDB answers an error when the index exists already
                if "already indexed" not in str(exc) and "already exists" not in str(exc):
                    raise StoreUnavailable(f"the graph store refused its schema: {exc}") from exc
                return

    async def close(self) -> None:
        if self._db is not None:
            await self._db.aclose()


NEO4J_SCHEMA = (
    "CREATE CONSTRAINT om_memory_id IF NOT EXISTS FOR (m:Memory) REQUIRE m.id IS UNIQUE",
    "CREATE CONSTRAINT om_entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.user_id, e.key) IS UNIQUE",
    "CREATE INDEX om_memory_user IF NOT EXISTS FOR (m:Memory) ON (m.user_id)",
)


class Neo4jGraphStore(GraphQueries):
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
            raise StoreUnavailable(f"the graph store is not reachable: {exc}") from exc
        return [list(record.values()) for record in records]

    async def ensure_schema(self) -> None:
        for statement in NEO4J_SCHEMA:
            await self._query("schema", statement, {})

    async def close(self) -> None:
        await self._driver.close()
