"""Export and import: OpenMemory's portable format, and the export zip of the OpenMemory server
this project succeeds (`memories.json`, optionally with `memories.jsonl.gz`).

Our format is one JSON document: the memories as stored, their history (events), the user's graph
and the embedding model's tag. Import keeps ids, texts, apps, states, categories and times; ingest
re-embeds with the model in use and rebuilds the graph from the texts.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput

FORMAT = "openmemory-export"
VERSION = 1
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_MEMORIES = 100_000


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
    Anything else, or anything malformed, is refused with the reason; nothing is imported."""
    if not data:
        raise InvalidInput("the upload is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    if data[:2] == b"PK":
        return "openmemory-zip", _from_zip(data)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the upload is neither an OpenMemory export (JSON) nor an export zip") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInput(f"the JSON is not an export of this format (its 'format' must be {FORMAT!r})")
    if document.get("version") != VERSION:
        raise InvalidInput(f"export version {document.get('version')!r} is not supported (only {VERSION})")
    try:
        export = Export.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"the export is malformed at {_where(first)}: {first['msg']}") from exc
    return FORMAT, [_from_ours(m) for m in export.memories if m.state is not c.MemoryState.DELETED]


def _where(error: Any) -> str:
    return ".".join(str(p) for p in error["loc"]) or "the top"


def _from_ours(memory: c.Memory) -> c.ImportedMemory:
    return c.ImportedMemory(
        id=memory.id, text=memory.text, app=memory.app, state=memory.state, categories=memory.categories,
        metadata=memory.metadata, created_at=memory.created_at, updated_at=memory.updated_at,
        occurred_at=memory.occurred_at, previous=memory.previous, context=memory.context,
    )  # fmt: skip


def _member(archive: zipfile.ZipFile, name: str) -> bytes | None:
    matches = [i for i in archive.infolist() if not i.is_dir() and i.filename.rsplit("/", 1)[-1] == name]
    if not matches:
        return None
    if len(matches) > 1:
        raise InvalidInput(f"the zip holds {name} twice")
    if matches[0].file_size > MAX_UNPACKED_BYTES:
        raise InvalidInput(f"{name} is larger than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB unpacked")
    with archive.open(matches[0]) as handle:
        return handle.read(MAX_UNPACKED_BYTES + 1)


def _from_zip(data: bytes) -> list[c.ImportedMemory]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = _member(archive, "memories.json")
            logical = _member(archive, "memories.jsonl.gz")
    except zipfile.BadZipFile as exc:
        raise InvalidInput("the zip file is damaged") from exc
    if manifest is None:
        raise InvalidInput("the zip has no memories.json: it is not an OpenMemory export")
    try:
        document = json.loads(manifest)
    except ValueError as exc:
        raise InvalidInput("memories.json is not valid JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("memories"), list):
        raise InvalidInput("memories.json has no 'memories' list")
    apps = {str(a.get("id")): a.get("name") for a in document.get("apps", []) if isinstance(a, dict)}
    categories = {
        str(k.get("id")): k.get("name") for k in document.get("categories", []) if isinstance(k, dict)
    }
    rows: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(document["memories"]):
        if not isinstance(row, dict):
            raise InvalidInput(f"memories.json: memories[{index}] is not an object")
        rows[str(row.get("id"))] = {
            **row,
            "app": apps.get(str(row.get("app_id"))),
            "categories": [categories[i] for i in map(str, row.get("category_ids") or []) if i in categories],
        }
    for index, record in enumerate(_jsonl_gz(logical) if logical is not None else []):
        if not isinstance(record, dict):
            raise InvalidInput(f"memories.jsonl.gz: record {index + 1} is not an object")
        base = rows.get(str(record.get("id")), {})
        rows[str(record.get("id"))] = {**base, **{k: v for k, v in record.items() if v is not None}}
    if len(rows) > MAX_MEMORIES:
        raise InvalidInput(f"the export holds more than {MAX_MEMORIES} memories")
    found: list[c.ImportedMemory] = []
    for index, row in enumerate(rows.values()):
        if row.get("state", "active") == "deleted" or not (row.get("content") or "").strip():
            continue
        try:
            found.append(
                c.ImportedMemory(
                    id=row.get("id"), text=row["content"].strip(), app=_app_name(row.get("app")),
                    state=c.MemoryState(row.get("state") or "active"),
                    categories=row.get("categories") or None,
                    metadata=row.get("metadata") or {}, created_at=row.get("created_at"),
                    updated_at=row.get("updated_at"),
                )
            )  # fmt: skip
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(
                f"memory {index + 1} ({row.get('id')}): {_where(first)}: {first['msg']}"
            ) from exc
    return found


def _app_name(name: object) -> str:
    """OpenMemory's app names become ours where they fit our name rules."""
    text = str(name or "openmemory")
    cleaned = "".join(ch if ch.isalnum() or ch in "._@-" else "-" for ch in text).strip("-._@")[:128]
    return cleaned or "openmemory"


def _jsonl_gz(blob: bytes) -> list[Any]:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as unpacked:
            text = unpacked.read(MAX_UNPACKED_BYTES + 1)  # bounded: a small bomb cannot fill memory
    except (OSError, EOFError) as exc:
        raise InvalidInput("memories.jsonl.gz is not valid gzip") from exc
    if len(text) > MAX_UNPACKED_BYTES:
        raise InvalidInput("memories.jsonl.gz is too large unpacked")
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise InvalidInput("memories.jsonl.gz holds a line that is not JSON") from exc


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
