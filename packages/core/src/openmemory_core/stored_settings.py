"""Settings saved from the dashboard (a NATS KV entry) on top of those from the environment.

Both parts apply without a restart: ingest watches the entry and rebuilds its extractor; the runtime
watches the embedder part and reloads ingest and search with the new model (a new model means a new
collection, which ingest then fills by re-embedding the stored memories). Keys are write-only.
"""

from __future__ import annotations

from typing import Any, TypeVar

import nats.js.errors
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field, SecretStr, ValidationError

from openmemory_core.errors import InvalidInput
from openmemory_core.settings import EmbedderSettings, LLMSettings

S = TypeVar("S", bound=BaseModel)

SETTINGS_KEY = "runtime"
_SECRETS = ("api_key",)


class StoredSettings(BaseModel):
    """Only the fields a person set; everything else comes from the environment."""

    llm: dict[str, Any] = Field(default_factory=dict)
    embedder: dict[str, Any] = Field(default_factory=dict)


async def load(kv: KeyValue) -> tuple[StoredSettings, int]:
    """The stored settings and the entry's revision (0 when nothing was saved)."""
    try:
        entry = await kv.get(SETTINGS_KEY)
    except nats.js.errors.KeyNotFoundError:
        return StoredSettings(), 0
    if not entry.value:
        return StoredSettings(), entry.revision or 0
    return StoredSettings.model_validate_json(entry.value), entry.revision or 0


def effective_llm(base: LLMSettings, stored: StoredSettings) -> LLMSettings:
    return _merge(base, stored.llm)


def effective_embedder(base: EmbedderSettings, stored: StoredSettings) -> EmbedderSettings:
    return _merge(base, stored.embedder)


def _merge(base: S, changes: dict[str, Any]) -> S:
    values = base.model_dump()
    values.update({k: (SecretStr(v) if k in _SECRETS and v else v) for k, v in changes.items()})
    try:
        return type(base).model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"setting {where}: {first['msg']}") from exc


def public(settings: BaseModel) -> dict[str, Any]:
    """What may be shown: every field but the secrets, which become `<name>_set: bool`."""
    values = settings.model_dump()
    for name in _SECRETS:
        if name in values:
            values[f"{name}_set"] = values.pop(name) is not None
    return values


async def save(
    kv: KeyValue, llm_base: LLMSettings, embedder_base: EmbedderSettings, changes: StoredSettings
) -> StoredSettings:
    """Merge a change into the stored settings, validate the result, and store it.

    A secret given as None is left as it is; given as "" it is cleared.
    """
    current, _ = await load(kv)
    merged = StoredSettings(llm=dict(current.llm), embedder=dict(current.embedder))
    for part, change in (("llm", changes.llm), ("embedder", changes.embedder)):
        target: dict[str, Any] = getattr(merged, part)
        for key, value in change.items():
            if key in _SECRETS and value is None:
                continue
            target[key] = None if key in _SECRETS and value == "" else value
    llm = effective_llm(llm_base, merged)
    effective_embedder(embedder_base, merged)
    if llm.extractor == "llm" and not llm.base_url and not llm.api_key:
        raise InvalidInput("the LLM extractor needs a base URL or an API key")
    await kv.put(SETTINGS_KEY, merged.model_dump_json().encode())
    return merged
