"""Import cannot exhaust the server: a zip bomb, deeply nested JSON and a flood of tiny values are
refused with 422 quickly, the rest of the system keeps answering meanwhile, and nothing of them is
imported. A real `openmemory run --target all`: every component shares one event loop."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable

import httpx
import pytest
from e2e_support import mcp_client, new_key

from openmemory_testing import RunningSystem, unique
from openmemory_testing.uploads import zipped

MB = 1024 * 1024


def red_team_zip() -> bytes:
    """The finding: a zip of about 65 KB whose memories.json is 66 MB of `{},`."""
    return zipped({"memories.json": b'{"memories": [' + b"{}," * (22 * MB) + b"{}]}"})


def gzip_bomb() -> bytes:
    """A valid memories.json, and a memories.jsonl.gz of 100 KB that unpacks to 100 MB."""
    logical = gzip.compress(b" " * (100 * MB))
    return zipped({"memories.json": b'{"memories": []}', "memories.jsonl.gz": logical})


def nested_export() -> bytes:
    row = {"id": "m", "user_id": "u", "app": "cursor", "text": "Hi", "created_at": "2025-01-01T00:00:00Z",
           "updated_at": "2025-01-01T00:00:00Z", "content_hash": "h", "request_id": "r"}  # fmt: skip
    document = {"format": "openmemory-export", "version": 1, "user_id": "u", "embedding_model": "m"}
    raw = json.dumps({**document, "memories": [{**row, "metadata": {"x": "DEEP"}}]}).encode()
    return raw.replace(b'"DEEP"', b"[" * 100_000 + b"]" * 100_000)


def value_flood() -> bytes:
    """60 MB of empty objects as memories: under the upload limit, tens of GB as Python objects."""
    return b'{"format": "openmemory-export", "version": 1, "memories": [' + b"{}," * (20 * MB) + b"{}]}"


UPLOADS: dict[str, Callable[[], bytes]] = {
    "the red team's zip": red_team_zip,
    "a gzip bomb in the zip": gzip_bomb,
    "deeply nested JSON": lambda: b"[" * 100_000,
    "an export with deeply nested metadata": nested_export,
    "a flood of empty objects": value_flood,
}


@pytest.mark.parametrize("name", list(UPLOADS))
async def test_a_hostile_upload_is_refused_quickly_and_the_system_keeps_answering(
    all_in_one: RunningSystem, name: str
) -> None:
    user = unique("imp")
    key = new_key(all_in_one, user, scopes="read,write,admin")
    body = UPLOADS[name]()
    async with (
        mcp_client(all_in_one.mcp_url, new_key(all_in_one, user, app="cursor")) as cursor,
        httpx.AsyncClient(
            base_url=all_in_one.admin_url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as admin,
        httpx.AsyncClient(base_url=all_in_one.gateway_url, timeout=120) as gateway,
    ):
        await cursor.call("add_memories", text="I live in Porto.", infer=False)
        before = (await admin.get("/memories")).json()
        waits: list[float] = []

        async def probe_health() -> None:
            while not upload.done() or len(waits) < 3:
                started = time.monotonic()
                assert (await gateway.get("/healthz")).status_code == 200
                waits.append(time.monotonic() - started)
                await asyncio.sleep(0.05)

        started = time.monotonic()
        upload = asyncio.create_task(admin.post("/import", content=body))
        await probe_health()
        answer, took = await upload, time.monotonic() - started
        assert answer.status_code == 422, (answer.status_code, answer.text[:300])
        assert took < 10, f"the upload took {took:.1f}s"
        assert max(waits) < 1, f"/healthz waited up to {max(waits):.1f}s during the upload"
        assert (await admin.get("/memories")).json() == before
        assert await cursor.texts() == ["I live in Porto."]
