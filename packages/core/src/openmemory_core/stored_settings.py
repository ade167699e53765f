"""Settings saved from the dashboard (a NATS KV entry) on top of those from the environment.

Both parts apply without a restart: ingest watches the entry and rebuilds its extractor; the runtime
watches the embedder part and reloads ingest and search with the new model (a new model means a new
collection, which ingest then fills by re-embedding the stored memories).

These are the system's settings, shared by every user: only an `operator` key may change them. The
exceptions are each user's write-guard policy (`GuardPolicy`) and review setting (`ReviewPolicy`),
each its own entry per user, which the user's `admin` key sets.
Model API keys are write-only, sealed at rest and bound to the base URL they were given with
(`sealed`): a key is only ever sent to that URL, whether it came from the dashboard or from the
environment, and a change of base URL needs the key again. A base URL saved here must point at a
public address unless the operator allows private ones (`outbound`).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated, Any, Literal, TypeVar

import nats.js.errors
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from openmemory_core import outbound
from openmemory_core.contracts import ID_NAME_PATTERN
from openmemory_core.errors import InvalidInput
from openmemory_core.kv import kv_value
from openmemory_core.sealed import sealer_for
from openmemory_core.settings import EmbedderSettings, LLMSettings, Settings

log = logging.getLogger(__name__)

S = TypeVar("S", LLMSettings, EmbedderSettings)
P = TypeVar("P", bound=BaseModel)

SETTINGS_KEY = "runtime"
API_KEY = "api_key"
SEALED_KEY = "api_key_sealed"
PARTS = ("llm", "embedder")


class StoredSettings(BaseModel):
    """Only the fields a person set; everything else comes from the environment. A model API key
    is kept sealed (`api_key_sealed`), never as it was typed."""

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


def effective_llm(settings: Settings, stored: StoredSettings) -> LLMSettings:
    """The extractor settings in force: the environment's, with the saved ones on top."""
    return _merge(settings, "llm", settings.llm, stored.llm)


def effective_embedder(settings: Settings, stored: StoredSettings) -> EmbedderSettings:
    """The embedder settings in force: the environment's, with the saved ones on top."""
    return _merge(settings, "embedder", settings.embedder, stored.embedder)


def _binding(part: str, url: str | None) -> str:
    """What a sealed key is bound to: its part and the base URL (none: the provider's default)."""
    return f"{part}|{url or ''}"


def _merge(settings: Settings, part: str, base: S, changes: dict[str, Any]) -> S:
    values = base.model_dump()
    values.update({k: v for k, v in changes.items() if k not in (API_KEY, SEALED_KEY)})
    url = values.get("base_url")
    key: str | None = None
    if changes.get(SEALED_KEY):
        key = sealer_for(settings.core).open(str(changes[SEALED_KEY]), _binding(part, url))
        if key is None:
            log.warning(
                "the %s API key saved from the dashboard cannot be used here: it was saved for another "
                "base URL, or sealed with another secrets key (give every process the same "
                "OPENMEMORY_SECRETS_KEY)",
                part,
            )
    if key is None and base.api_key is not None and url == base.base_url:
        key = base.api_key.get_secret_value()  # the environment's key, only for the environment's URL
    values[API_KEY] = SecretStr(key) if key else None
    values["check_outbound"] = bool(url) and url != base.base_url and not settings.core.allow_private_urls
    try:
        return base.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"setting {where}: {first['msg']}") from exc


def public(settings: BaseModel) -> dict[str, Any]:
    """What may be shown: every field but the secrets, which become `<name>_set: bool`."""
    values = settings.model_dump()
    if API_KEY in values:
        values[f"{API_KEY}_set"] = values.pop(API_KEY) is not None
    return values


async def save(kv: KeyValue, settings: Settings, changes: StoredSettings) -> StoredSettings:
    """Merge a change into the stored settings, validate the result, and store it.

    An API key given as None is left as it is; given as "" it is cleared; given as text it is sealed
    for the base URL in force after the change. A change of base URL while a key is in force needs
    the key again (or "" to go on without one), and a new base URL must be public unless private
    ones are allowed.
    """
    current, _ = await load(kv)
    merged = StoredSettings(llm=dict(current.llm), embedder=dict(current.embedder))
    sealer = sealer_for(settings.core)
    for part in PARTS:
        change = dict(getattr(changes, part))
        target: dict[str, Any] = getattr(merged, part)
        base: LLMSettings | EmbedderSettings = getattr(settings, part)
        before = effective_llm(settings, merged) if part == "llm" else effective_embedder(settings, merged)
        new_key = change.pop(API_KEY, None)
        if new_key is not None and not isinstance(new_key, str):
            raise InvalidInput(f"setting {part}.api_key must be text")
        change.pop(SEALED_KEY, None)  # never taken from a request
        if change.get("base_url") == "":
            change["base_url"] = None  # cleared: the environment's, or the provider's default
        target.update(change)
        target.pop(API_KEY, None)  # an older version's plain-text key is not kept
        url = target.get("base_url", base.base_url)
        if url != before.base_url:
            if before.api_key is not None and new_key is None:
                raise InvalidInput(
                    f"changing the {part} base URL needs its API key again: send api_key with the new "
                    'URL (or "" to use none), so that a key is never sent to a URL it was not given for'
                )
            if url and url != base.base_url and not settings.core.allow_private_urls:
                await outbound.check_url(str(url))
            elif url:
                outbound.parse_url(str(url))
        if new_key == "":
            target.pop(SEALED_KEY, None)
        elif new_key is not None:
            target[SEALED_KEY] = sealer.seal(new_key, _binding(part, url))
        elif url != before.base_url:
            target.pop(SEALED_KEY, None)
    llm = effective_llm(settings, merged)
    effective_embedder(settings, merged)
    if llm.extractor == "llm" and not llm.base_url and not llm.api_key:
        raise InvalidInput("the LLM extractor needs a base URL or an API key")
    await kv.put(SETTINGS_KEY, merged.model_dump_json().encode())
    return merged


# ---- the write guard: one user's policy ------------------------------------------------------------

GuardAction = Literal["redact", "refuse", "allow"]
GUARD_KEY_PREFIX = "guard."


class GuardPolicy(BaseModel):
    """What the write guard does with what it finds in one user's writes (`openmemory_core.guard`):
    `redact` stores `[redacted: <kind>]` in its place, `refuse` stores nothing and says why, `allow`
    stores it as written. Secrets are keys, tokens, passwords, card numbers and IBANs."""

    model_config = ConfigDict(extra="forbid")

    secrets: GuardAction = "redact"
    email: GuardAction = "allow"
    phone: GuardAction = "allow"


def _user_key(prefix: str, user_id: str) -> str:
    """A user's entry in the settings bucket (hashed: any user id makes a valid key)."""
    return prefix + hashlib.sha256(user_id.encode()).hexdigest()[:32]


async def _load_policy(kv: KeyValue, key: str, model: type[P]) -> P:
    """A user's policy entry; the model's defaults when none was saved."""
    value, _ = await kv_value(kv, key)
    return model.model_validate_json(value) if value else model()


async def _save_policy(kv: KeyValue, key: str, model: type[P], changes: dict[str, Any], label: str) -> P:
    """Merge a change into a user's stored policy, validate it and store it; InvalidInput (naming
    the first wrong field), nothing stored, when it is not valid."""
    current = await _load_policy(kv, key, model)
    try:
        policy = model.model_validate(current.model_dump() | changes)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{label} {where}: {first['msg']}") from exc
    await kv.put(key, policy.model_dump_json().encode())
    return policy


def guard_key(user_id: str) -> str:
    """The user's write-guard entry in the settings bucket."""
    return _user_key(GUARD_KEY_PREFIX, user_id)


async def load_guard(kv: KeyValue, user_id: str) -> GuardPolicy:
    """The user's write-guard policy; the defaults when none was saved."""
    return await _load_policy(kv, guard_key(user_id), GuardPolicy)


async def save_guard(kv: KeyValue, user_id: str, changes: dict[str, Any]) -> GuardPolicy:
    """Merge a change into the user's policy, validate it and store it."""
    return await _save_policy(kv, guard_key(user_id), GuardPolicy, changes, "guard setting")


# ---- the review queue: one user's setting ----------------------------------------------------------

ReviewLevel = Literal["off", "llm-changes", "all"]
REVIEW_KEY_PREFIX = "review."
#: How many apps one user may give a review setting of their own.
MAX_REVIEW_APPS = 100


class ReviewPolicy(BaseModel):
    """Which changes to one user's memories wait for the user's approval (`pending`) instead of
    being applied: `off` none (but what reads as an instruction to an assistant, always), `llm-changes`
    the LLM extractor's UPDATE and DELETE decisions, `all` every new memory too. `apps` overrides the
    user's setting for the apps it names (the app a key or an MCP URL names)."""

    model_config = ConfigDict(extra="forbid")

    review: ReviewLevel = "off"
    apps: dict[Annotated[str, Field(pattern=ID_NAME_PATTERN)], ReviewLevel] = Field(
        default_factory=dict, max_length=MAX_REVIEW_APPS
    )

    def level_for(self, app: str) -> ReviewLevel:
        """The setting that applies to what `app` sends."""
        return self.apps.get(app, self.review)


def review_key(user_id: str) -> str:
    """The user's review entry in the settings bucket."""
    return _user_key(REVIEW_KEY_PREFIX, user_id)


async def load_review(kv: KeyValue, user_id: str) -> ReviewPolicy:
    """The user's review setting; `off` when none was saved."""
    return await _load_policy(kv, review_key(user_id), ReviewPolicy)


async def save_review(kv: KeyValue, user_id: str, changes: dict[str, Any]) -> ReviewPolicy:
    """Validate the user's new review setting (`review`, and `apps` which replaces the stored app
    overrides when given) and store it; InvalidInput, nothing stored, when it is not valid."""
    return await _save_policy(kv, review_key(user_id), ReviewPolicy, changes, "review setting")
