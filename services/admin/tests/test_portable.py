"""Parsing an uploaded export: what still imports from our format and the OpenMemory zip, and the
memories it refuses (names and fields outside the API's rules). The bounds on reading an upload
(bombs, nesting, floods) are `test_upload_limits`'s."""

from __future__ import annotations

import gzip
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from openmemory_admin import portable
from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput
from openmemory_testing.uploads import exported_memory as memory
from openmemory_testing.uploads import zipped


def ours(*memories: c.Memory, **changes: Any) -> dict[str, Any]:
    """Our export format as a JSON document, ready to be spoiled by a test."""
    export = portable.Export(user_id="alice", embedding_model="minilm", memories=list(memories))
    document: dict[str, Any] = json.loads(export.model_dump_json())
    document.update(changes)
    return document


def upload(document: Any) -> bytes:
    return json.dumps(document).encode()


def openmemory_zip(
    memories: list[dict[str, Any]] | None = None, jsonl: list[dict[str, Any]] | None = None
) -> bytes:
    """An export zip in the layout of the OpenMemory server's backup export."""
    app_id, cat_id = str(uuid.uuid4()), str(uuid.uuid4())
    rows = memories or [
        {"id": str(uuid.uuid4()), "app_id": app_id, "content": "Prefers dark mode", "metadata": {"s": "om"},
         "state": "active", "created_at": "2025-03-01T10:00:00+00:00",
         "updated_at": "2025-03-01T10:00:00+00:00", "category_ids": [cat_id]},
    ]  # fmt: skip
    manifest = {
        "apps": [{"id": app_id, "name": "Claude Desktop"}],
        "categories": [{"id": cat_id, "name": "preferences"}],
        "memories": rows,
    }
    files = {"memories.json": json.dumps(manifest).encode()}
    if jsonl is not None:
        files["memories.jsonl.gz"] = gzip.compress("\n".join(map(json.dumps, jsonl)).encode())
    return zipped(files)


def refused(data: bytes, match: str | None = None) -> str:
    """Parse `data`, which must be refused: the message."""
    with pytest.raises(InvalidInput, match=match) as caught:
        portable.parse_upload(data)
    return caught.value.message


# ---- what still imports ---------------------------------------------------------------------------


def test_our_export_round_trips() -> None:
    first = memory("I live in Porto.", categories=["personal"], metadata={"source": {"client": "cli"}})
    answer = memory(
        "A sunset.", app="claude-code", state="paused", previous=first.id, context="What did you paint?",
        occurred_at=datetime(2024, 7, 1, tzinfo=UTC),
    )  # fmt: skip
    gone = memory("Old thing.", state="deleted")
    event = c.MemoryEvent(
        request_id="r",
        user_id="alice",
        app="cursor",
        memory_id=first.id,
        change=c.ChangeKind.ADD,
        after=first,
    )
    document = ours(first, answer, gone, history=[json.loads(event.model_dump_json())])
    source, found = portable.parse_upload(upload(document))
    assert source == "openmemory-export"
    assert [m.model_dump() for m in found] == [
        c.ImportedMemory(
            id=m.id, text=m.text, app=m.app, state=m.state, categories=m.categories, metadata=m.metadata,
            created_at=m.created_at, updated_at=m.updated_at, occurred_at=m.occurred_at,
            previous=m.previous, context=m.context,
        ).model_dump()
        for m in (first, answer)
    ]  # fmt: skip


def test_an_openmemory_zip_still_imports_with_its_app_names_cleaned() -> None:
    rows = [
        {"id": str(uuid.uuid4()), "content": text, "app": app, "state": "active", "categories": ["work"],
         "created_at": "2025-03-01T10:00:00+00:00"}
        for text, app in [("Uses vim", "Claude Desktop"), ("Likes tea", "<script>x</script>"),
                          ("Runs daily", "../.."), ("Reads a lot", "a\x00b"), ("Plays chess", "cursor\n")]
    ]  # fmt: skip
    source, found = portable.parse_upload(openmemory_zip(jsonl=rows))
    assert source == "openmemory-zip"
    apps = {m.text: m.app for m in found}
    assert apps == {
        "Prefers dark mode": "Claude-Desktop", "Uses vim": "Claude-Desktop", "Likes tea": "script-x--script",
        "Runs daily": "openmemory", "Reads a lot": "a-b", "Plays chess": "cursor",
    }  # fmt: skip
    assert all(re.fullmatch(c.ID_NAME_PATTERN, app) for app in apps.values())


# ---- fields: the same rules as on the API -----------------------------------------------------------


@pytest.mark.parametrize("app", ["<script>alert(1)</script>", "../..", "a\x00b", "cursor\n", "", "x" * 129])
def test_our_format_refuses_app_names_the_api_refuses(app: str) -> None:
    good, bad = memory("I live in Porto."), memory("I play the cello.")
    document = ours(good, bad)
    document["memories"][1]["app"] = app
    message = refused(upload(document), "app")
    assert "memory 2" in message and bad.id in message


def spoiled(fmt: str, **fields: Any) -> bytes:
    """One memory with `fields` changed, in our format or in an OpenMemory zip."""
    if fmt == "ours":
        document = ours(memory("I live in Porto."))
        document["memories"][0].update(fields)
        return upload(document)
    row = {"id": str(uuid.uuid4()), "content": "I live in Porto.", "state": "active", **fields}
    return openmemory_zip(memories=[row])


def deep_metadata(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "large metadata": ({"metadata": {"blob": "x" * (portable.MAX_METADATA_BYTES + 1)}}, "metadata"),
    "deep metadata": ({"metadata": deep_metadata(portable.MAX_METADATA_DEPTH + 1)}, "metadata"),
    "metadata not an object": ({"metadata": ["a"]}, "metadata"),
    "too many categories": ({"categories": [f"c{i}" for i in range(portable.MAX_CATEGORIES + 1)]}, "categor"),
    "a long category": ({"categories": ["x" * (portable.MAX_CATEGORY_CHARS + 1)]}, "categor"),
    "a category with a NUL": ({"categories": ["a\x00b"]}, "categor"),
    "an empty category": ({"categories": [" "]}, "categor"),
}


@pytest.mark.parametrize("fmt", ["ours", "zip"])
@pytest.mark.parametrize("name", list(FIELDS))
def test_unbounded_fields_are_refused_naming_the_memory(fmt: str, name: str) -> None:
    fields, match = FIELDS[name]
    if fmt == "zip" and "categories" in fields:
        # OpenMemory keeps categories by id in memories.json; memories.jsonl.gz names them.
        row = {"id": str(uuid.uuid4()), "content": "I live in Porto.", "state": "active"}
        data = openmemory_zip(memories=[row], jsonl=[{"id": row["id"], **fields}])
    else:
        data = spoiled(fmt, **fields)
    message = refused(data, match)
    assert "memory 1" in message


@pytest.mark.parametrize(
    "row",
    [
        {"content": 5},
        {"content": "Hi", "state": "sleeping"},
        {"content": "Hi", "category_ids": 7},
        {"content": ["Hi"]},
    ],
)
def test_malformed_openmemory_rows_are_refused_not_crashed_on(row: dict[str, Any]) -> None:
    refused(openmemory_zip(memories=[{"id": str(uuid.uuid4()), **row}]))
