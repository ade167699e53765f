"""Export and import: OpenMemory's portable format, and the export zip of the OpenMemory server
this project succeeds (`memories.json`, optionally with `memories.jsonl.gz`).

Our format is one JSON document: the memories as stored, their history (events), the user's graph
and the embedding model's tag. Import keeps ids, texts, apps, states, categories and times; ingest
re-embeds with the model in use and rebuilds the graph from the texts.

An upload is untrusted: `upload_limits` reads it within bounds (the zip, the gzip inside, the JSON's
depth and size), and every memory here gets the rules the API applies to what it takes in.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from openmemory_admin.upload_limits import (
    MAX_UPLOAD_BYTES,
    Budget,
    NotJson,
    check_shape,
    gunzip,
    load_json,
    parse_json,
    unpack,
)
from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput

FORMAT = "openmemory-export"
VERSION = 1
MAX_MEMORIES = 100_000
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8
MAX_CATEGORIES = 50
MAX_CATEGORY_CHARS = 100

_APP_NAME = re.compile(c.ID_NAME_PATTERN)
M = TypeVar("M", bound=BaseModel)


class Export(BaseModel):
    format: str = FORMAT
    version: int = VERSION
    exported_at: datetime = Field(default_factory=c.now)
    user_id: str
    embedding_model: str
    memories: list[c.Memory]
    history: list[c.MemoryEvent] = Field(default_factory=list)
    graph: c.UserGraphResponse = Field(default_factory=lambda: c.UserGraphResponse(entities=[], relations=[]))


def parse_upload(data: bytes) -> tuple[str, list[c.ImportedMemory]]:
    """What an uploaded file holds: ("openmemory-export" | "openmemory-zip", its memories).
    Anything else, or anything malformed, is refused with the reason; nothing is imported.
    CPU-bound (up to a second or two for the largest upload): call it off the event loop."""
    if not data:
        raise InvalidInput("the upload is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    if data[:2] == b"PK":
        return "openmemory-zip", _from_zip(data)
    try:
        document = load_json(data, "the upload")
    except NotJson as exc:
        raise InvalidInput("the upload is neither an OpenMemory export (JSON) nor an export zip") from exc
    return FORMAT, _from_ours(document)


# ---- our format ----------------------------------------------------------------------------------


def _from_ours(document: Any) -> list[c.ImportedMemory]:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInput(f"the JSON is not an export of this format (its 'format' must be {FORMAT!r})")
    if document.get("version") != VERSION:
        raise InvalidInput(f"export version {document.get('version')!r} is not supported (only {VERSION})")
    memories, history = document.get("memories"), document.get("history", [])
    if not isinstance(memories, list) or not isinstance(history, list):
        raise InvalidInput("the export's 'memories' and 'history' must be lists")
    if len(memories) > MAX_MEMORIES:
        raise InvalidInput(f"the export holds more than {MAX_MEMORIES} memories")
    _check_history_and_graph(document)
    found = []
    for index, row in enumerate(memories):
        label = _label(index, row)
        if isinstance(row, dict) and not _is_app_name(row.get("app")):
            raise InvalidInput(
                f"{label}: app {_shown(row.get('app'))} is not a valid app name (1-128 letters, digits, "
                "'.', '_', '@' or '-', starting with a letter or digit)"
            )
        memory = _valid(c.Memory, row, label)
        if memory.state is not c.MemoryState.DELETED:
            found.append(_imported(label, _as_imported(memory)))
    return found


def _check_history_and_graph(document: dict[str, Any]) -> None:
    """The parts an import does not keep must still be well-formed. Checked one item at a time,
    stopping at the first fault: a list of a million bad items would make millions of errors."""
    graph = document.get("graph", {"entities": [], "relations": []})
    empty = {"memories": [], "history": [], "graph": {"entities": [], "relations": []}}
    _valid(Export, {**document, **empty}, "the export")
    for index, event in enumerate(document.get("history", [])):
        _valid(c.MemoryEvent, event, f"history event {index + 1}")
    entities, relations = (
        graph.get(k) if isinstance(graph, dict) else None for k in ("entities", "relations")
    )
    if not isinstance(entities, list) or not isinstance(relations, list):
        raise InvalidInput("the export's graph must have 'entities' and 'relations' lists")
    if not all(isinstance(entity, str) for entity in entities):
        raise InvalidInput("the export's graph: every entity must be a name (text)")
    for index, relation in enumerate(relations):
        _valid(c.Triple, relation, f"graph relation {index + 1}")


def _as_imported(memory: c.Memory) -> dict[str, Any]:
    return {
        "id": memory.id, "text": memory.text, "app": memory.app, "state": memory.state,
        "categories": memory.categories, "metadata": memory.metadata, "created_at": memory.created_at,
        "updated_at": memory.updated_at, "occurred_at": memory.occurred_at, "previous": memory.previous,
        "context": memory.context,
    }  # fmt: skip


def _valid(model: type[M], value: Any, label: str) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise InvalidInput(f"{label} is malformed at {_where(first)}: {first['msg']}") from exc


def _where(error: Any) -> str:
    return ".".join(str(p) for p in error["loc"]) or "the top"


def _label(index: int, row: Any) -> str:
    """How a message names a memory: its place in the file, and its id when it has one."""
    memory_id = row.get("id") if isinstance(row, dict) else None
    return f"memory {index + 1}" + (f" ({_shown(memory_id)})" if memory_id is not None else "")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_app_name(value: object) -> bool:
    return isinstance(value, str) and _APP_NAME.fullmatch(value) is not None


# ---- every memory, either format: the API's rules ------------------------------------------------


def _imported(label: str, fields: dict[str, Any]) -> c.ImportedMemory:
    """One memory as ingest takes it, after the checks the API would make."""
    metadata, categories = fields.get("metadata"), fields.get("categories")
    if not isinstance(metadata, dict):
        raise InvalidInput(f"{label}: metadata must be an object")
    if len(json.dumps(metadata, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        raise InvalidInput(f"{label}: metadata is larger than {MAX_METADATA_BYTES // 1024} KB as JSON")
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise InvalidInput(f"{label}: metadata is nested more than {MAX_METADATA_DEPTH} levels deep")
    if categories is not None:
        if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
            raise InvalidInput(f"{label}: categories must be a list of at most {MAX_CATEGORIES} names")
        for name in categories:
            if not _is_category(name):
                raise InvalidInput(
                    f"{label}: category {_shown(name)} is not a valid category (1-{MAX_CATEGORY_CHARS} "
                    "characters, not only spaces, no control characters)"
                )
    return _valid(c.ImportedMemory, fields, label)


def _is_category(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_CATEGORY_CHARS
        and bool(name.strip())
        and not any(unicodedata.category(ch) == "Cc" for ch in name)
    )


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (a scalar is 0)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in children)
    return deepest


# ---- the OpenMemory server's export zip ----------------------------------------------------------


def _from_zip(data: bytes) -> list[c.ImportedMemory]:
    budget = Budget()
    manifest, logical = unpack(data, budget)
    if manifest is None:
        raise InvalidInput("the zip has no memories.json: it is not an OpenMemory export")
    document = load_json(manifest, "memories.json")
    del manifest
    if not isinstance(document, dict) or not isinstance(document.get("memories"), list):
        raise InvalidInput("memories.json has no 'memories' list")
    if len(document["memories"]) > MAX_MEMORIES:
        raise InvalidInput(f"the export holds more than {MAX_MEMORIES} memories")
    apps, categories = _names(document.get("apps")), _names(document.get("categories"))
    rows: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(document["memories"]):
        if not isinstance(row, dict):
            raise InvalidInput(f"memories.json: memories[{index}] is not an object")
        ids = row.get("category_ids") or []
        if not isinstance(ids, list):
            raise InvalidInput(f"memories.json: {_label(index, row)}: category_ids must be a list")
        rows[str(row.get("id"))] = {
            **row,
            "app": apps.get(str(row.get("app_id"))),
            "categories": [categories[i] for i in map(str, ids) if i in categories],
        }
    for index, record in enumerate(_jsonl(logical, budget) if logical is not None else []):
        if not isinstance(record, dict):
            raise InvalidInput(f"memories.jsonl.gz: record {index + 1} is not an object")
        base = rows.get(str(record.get("id")), {})
        rows[str(record.get("id"))] = {**base, **{k: v for k, v in record.items() if v is not None}}
    if len(rows) > MAX_MEMORIES:
        raise InvalidInput(f"the export holds more than {MAX_MEMORIES} memories")
    found: list[c.ImportedMemory] = []
    for index, row in enumerate(rows.values()):
        label, content = _label(index, row), row.get("content")
        if row.get("state") == "deleted" or content is None or content == "":
            continue
        if not isinstance(content, str):
            raise InvalidInput(f"{label}: content must be text")
        if not content.strip():
            continue
        fields = {
            "id": row.get("id"), "text": content.strip(), "app": _app_name(row.get("app")),
            "state": row.get("state") or "active", "categories": row.get("categories") or None,
            "metadata": row.get("metadata") or {}, "created_at": row.get("created_at"),
            "updated_at": row.get("updated_at"),
        }  # fmt: skip
        found.append(_imported(label, fields))
    return found


def _names(items: object) -> dict[str, object]:
    """OpenMemory's apps or categories by id: {id: name}."""
    if not isinstance(items, list):
        return {}
    return {str(item.get("id")): item.get("name") for item in items if isinstance(item, dict)}


def _app_name(name: object) -> str:
    """OpenMemory's app names (free text) become ours where they fit our name rules."""
    text = str(name or "openmemory")
    cleaned = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "._@-" else "-" for ch in text)
    cleaned = cleaned.strip("-._@")[:128]
    return cleaned if _is_app_name(cleaned) else "openmemory"


def _jsonl(blob: bytearray, budget: Budget) -> list[Any]:
    text = gunzip(blob, budget, "memories.jsonl.gz")
    if text.count(b"\n") > MAX_MEMORIES:
        raise InvalidInput(f"memories.jsonl.gz holds more than {MAX_MEMORIES} lines")
    check_shape(text, "memories.jsonl.gz")
    lines = enumerate(text.split(b"\n"), 1)
    return [parse_json(line, f"memories.jsonl.gz line {n}") for n, line in lines if line.strip()]


# ---- import batches ------------------------------------------------------------------------------


def batches(memories: list[c.ImportedMemory], size: int = c.MAX_IMPORT_BATCH) -> list[list[c.ImportedMemory]]:
    """Import batches small enough for one command each (the bus takes messages up to 1 MB)."""
    out: list[list[c.ImportedMemory]] = []
    current: list[c.ImportedMemory] = []
    weight = 0
    for memory in memories:
        cost = len(memory.model_dump_json())
        if current and (len(current) >= size or weight + cost > 512 * 1024):
            out.append(current)
            current, weight = [], 0
        current.append(memory)
        weight += cost
    if current:
        out.append(current)
    return out
