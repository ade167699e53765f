"""Backup and restore of everything a system knows, and rebuilding its stores from the events.

The events stream is the record of every memory's every change; the KV buckets hold the API keys,
the apps' access settings and the saved settings. A backup is a zip of those. Restoring loads them
into an empty system and then rebuilds the vectors and the graph from the events (a rebuild command
that ingest applies), so a restored system answers searches as the original did. Vectors are not
in the backup: they are recomputed, with whichever embedding model the restored system runs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import zipfile
from pathlib import Path
from typing import Any

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.errors import InvalidInput
from openmemory_core.kv import Bucket, kv_entries

FORMAT = "openmemory-backup"
VERSION = 1
BUCKETS = (c.KEYS_BUCKET, c.APPS_BUCKET, c.SETTINGS_BUCKET)


#: Entries that belong to a running system, not to its data: dashboard sessions end with it.
TRANSIENT_PREFIXES = (c.SESSION_KEY_PREFIX,)


async def _kv_entries(kv: Bucket) -> list[dict[str, str]]:
    return [
        {"key": name, "value": base64.b64encode(value).decode()}
        for name, value in await kv_entries(kv)
        if not name.startswith(TRANSIENT_PREFIXES)
    ]


async def _buckets(bus: Bus) -> dict[str, Bucket]:
    return {
        c.KEYS_BUCKET: await bus.keys_bucket(),
        c.APPS_BUCKET: await bus.apps_bucket(),
        c.SETTINGS_BUCKET: await bus.settings_bucket(),
    }


async def backup(bus: Bus, out: Path) -> dict[str, Any]:
    """Write every event and KV entry to a zip at `out`; returns the manifest."""
    lines: list[str] = []
    sequence = 0
    while page := await bus.events_after(sequence):
        sequence = page[-1][0]
        lines.extend(event.model_dump_json() for _, event in page)
    buckets = {name: await _kv_entries(kv) for name, kv in (await _buckets(bus)).items()}
    manifest = {
        "format": FORMAT, "version": VERSION, "created_at": c.now().isoformat(), "events": len(lines),
        "kv": {name: len(entries) for name, entries in buckets.items()},
    }  # fmt: skip
    await asyncio.to_thread(_write, out, manifest, lines, buckets)
    return manifest


def _write(
    out: Path, manifest: dict[str, Any], lines: list[str], buckets: dict[str, list[dict[str, str]]]
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        archive.writestr("events.jsonl", "\n".join(lines))
        for name, entries in buckets.items():
            archive.writestr(f"kv/{name}.jsonl", "\n".join(json.dumps(e) for e in entries))
    partial.chmod(0o600)  # it holds key hashes and settings
    partial.replace(out)  # a backup file is whole or absent


def read_backup(path: Path) -> tuple[dict[str, Any], list[c.MemoryEvent], dict[str, list[dict[str, str]]]]:
    """Parse and check a whole backup before anything is written."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
                raise InvalidInput(f"{path} is not an OpenMemory backup of version {VERSION}")
            raw = archive.read("events.jsonl").decode()
            events = [c.MemoryEvent.model_validate_json(line) for line in raw.splitlines() if line.strip()]
            buckets = {
                name: [
                    json.loads(line)
                    for line in archive.read(f"kv/{name}.jsonl").decode().splitlines()
                    if line
                ]
                for name in BUCKETS
            }
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InvalidInput(f"{path} is not a readable OpenMemory backup: {exc}") from exc
    if len(events) != manifest.get("events"):
        raise InvalidInput(f"{path} is incomplete: {len(events)} events of {manifest.get('events')}")
    return manifest, events, buckets


async def restore(bus: Bus, path: Path, command: c.RebuildCommand) -> dict[str, Any]:
    """Load a backup into a system that holds no events yet, then send `command` to rebuild its
    stores from the events. The whole file is checked before anything is written."""
    manifest, events, buckets = await asyncio.to_thread(read_backup, path)
    info = await bus.js.stream_info(c.EVENTS_STREAM)
    if info.state.messages:
        raise InvalidInput(
            f"this system already holds {info.state.messages} events: restore into an empty data dir "
            "(or an empty NATS)"
        )
    for name, kv in (await _buckets(bus)).items():
        for entry in buckets[name]:
            await kv.put(entry["key"], base64.b64decode(entry["value"]))
    for event in events:
        await bus.publish_event(event)
    await bus.publish_command(command)
    return manifest


def describe(manifest: dict[str, Any]) -> str:
    kv = ", ".join(f"{n} {k}" for k, n in manifest["kv"].items())
    return f"{manifest['events']} events; {kv}"
