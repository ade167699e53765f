"""Files to upload in tests: zips in any layout, and memories as an export holds them."""

from __future__ import annotations

import io
import uuid
import zipfile
from datetime import UTC, datetime
from typing import Any

from openmemory_core import contracts as c


def zipped(files: dict[str, bytes]) -> bytes:
    """A zip archive of `files` (name -> content)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def exported_memory(text: str, user: str = "alice", **fields: Any) -> c.Memory:
    """A memory of `user` as an export holds it (fixed times, fresh id), with `fields` on top."""
    at = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()), "user_id": user, "app": "cursor", "text": text, "created_at": at,
        "updated_at": at, "content_hash": c.content_hash(user, text), "request_id": uuid.uuid4().hex,
    }  # fmt: skip
    return c.Memory.model_validate({**values, **fields})
