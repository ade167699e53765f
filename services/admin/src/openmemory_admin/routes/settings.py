"""The server's extractor/LLM and embedder settings, shared by every user: they need `operator`.
API keys are write-only; ingest and search pick changes up within seconds. Each user's write guard
(`/settings/guard`) is theirs: their `admin` key reads and changes it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from openmemory_admin.deps import Admin, AdminContext, Ctx, Operator
from openmemory_core import stored_settings
from openmemory_core.errors import InvalidInput

router = APIRouter(tags=["settings"])


class SettingsChange(BaseModel):
    llm: dict[str, Any] = Field(default_factory=dict)
    embedder: dict[str, Any] = Field(default_factory=dict)


LLM_FIELDS = frozenset(
    {"extractor", "base_url", "api_key", "model", "custom_instructions", "similar_memories"}
)
EMBEDDER_FIELDS = frozenset({"provider", "model", "base_url", "api_key", "dimensions"})


async def _settings_view(ctx: AdminContext) -> dict[str, Any]:
    stored, _ = await stored_settings.load(ctx.settings_kv)
    llm = stored_settings.effective_llm(ctx.settings, stored)
    embedder = stored_settings.effective_embedder(ctx.settings, stored)
    return {
        "llm": {k: v for k, v in stored_settings.public(llm).items() if k in LLM_FIELDS | {"api_key_set"}},
        "embedder": {
            k: v
            for k, v in stored_settings.public(embedder).items()
            if k in EMBEDDER_FIELDS | {"api_key_set"}
        },
        "applies": {
            "llm": "to ingest within seconds",
            "embedder": "within seconds: ingest and search reload, and stored memories are re-embedded",
        },
    }


@router.get("/settings")
async def get_settings(_: Operator, ctx: Ctx) -> dict[str, Any]:
    """The extractor/LLM and embedder settings in effect. API keys are never returned: only
    whether one is set."""
    return await _settings_view(ctx)


@router.put("/settings")
async def put_settings(body: SettingsChange, _: Operator, ctx: Ctx) -> dict[str, Any]:
    """Save settings. The LLM part applies to ingest without a restart. An `api_key` of null keeps
    the stored one, "" clears it."""
    unknown = (set(body.llm) - LLM_FIELDS) | (set(body.embedder) - EMBEDDER_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown settings: {', '.join(sorted(unknown))}")
    changes = stored_settings.StoredSettings(llm=body.llm, embedder=body.embedder)
    await stored_settings.save(ctx.settings_kv, ctx.settings, changes)
    return await _settings_view(ctx)


@router.get("/settings/guard")
async def get_guard(principal: Admin, ctx: Ctx) -> stored_settings.GuardPolicy:
    """Your write guard: what happens to a secret (key, token, password, card number, IBAN), an
    e-mail address or a phone number in a memory you add or import. `redact` stores
    `[redacted: <kind>]` in its place, `refuse` stores nothing and says why, `allow` keeps it."""
    return await stored_settings.load_guard(ctx.settings_kv, principal.user_id)


@router.put("/settings/guard")
async def put_guard(body: dict[str, Any], principal: Admin, ctx: Ctx) -> stored_settings.GuardPolicy:
    """Change your write guard (any of `secrets`, `email`, `phone`: `redact`, `refuse` or `allow`).
    It applies to the next write; what is stored already is not changed."""
    return await stored_settings.save_guard(ctx.settings_kv, principal.user_id, body)
