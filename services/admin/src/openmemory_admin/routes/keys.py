"""The user's API keys (list, mint, revoke), and connecting an MCP client: a key bound to that
client and the install snippets that use it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from openmemory_admin.deps import Admin, Ctx
from openmemory_core import contracts as c
from openmemory_core.errors import Forbidden
from openmemory_core.keys import create_key, list_keys, revoke_key

router = APIRouter(tags=["keys"])


# ---- schemas -------------------------------------------------------------------------------------


class KeyView(BaseModel):
    prefix: str
    app: str
    scopes: list[str]
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


def _key_view(record: c.ApiKeyRecord) -> KeyView:
    return KeyView.model_validate(record.model_dump(include=set(KeyView.model_fields)))


class NewKey(BaseModel):
    app: str = Field(default=c.ANY_APP, max_length=128)
    scopes: list[Literal["read", "write", "admin", "operator"]] = Field(
        default=["read", "write"], min_length=1
    )
    label: str = Field(default="", max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class CreatedKey(BaseModel):
    api_key: str  # shown this once; only its hash is stored
    key: KeyView


class Connect(BaseModel):
    client: Literal["claude", "cursor", "windsurf", "cline", "vscode", "claude-code"]


class Snippets(BaseModel):
    client: str
    api_key: str
    url: str
    snippets: dict[str, str]


# ---- API keys ------------------------------------------------------------------------------------


@router.get("/keys")
async def keys(principal: Admin, ctx: Ctx) -> list[KeyView]:
    """The user's API keys: prefix, app, scopes, last use; never the keys themselves."""
    return [_key_view(r) for r in await list_keys(ctx.keys, principal.user_id)]


@router.post("/keys", status_code=201)
async def new_key(body: NewKey, principal: Admin, ctx: Ctx) -> CreatedKey:
    """Mint a key for the caller's user, with at most the caller's own scopes."""
    beyond = [s for s in body.scopes if not principal.can(s)]
    if beyond:
        raise Forbidden(f"a key cannot grant scopes it does not have: {', '.join(beyond)}")
    expires = c.now() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, record = await create_key(
        ctx.keys, principal.user_id, body.app, tuple(dict.fromkeys(body.scopes)), body.label, expires
    )
    return CreatedKey(api_key=token, key=_key_view(record))


@router.delete("/keys/{prefix}")
async def revoke(prefix: str, principal: Admin, ctx: Ctx) -> KeyView:
    """Revoke one of the user's keys: refused from the next request on, on every replica."""
    return _key_view(await revoke_key(ctx.keys, prefix, principal.user_id))


# ---- connect a client ----------------------------------------------------------------------------


@router.post("/connect", status_code=201)
async def connect(body: Connect, principal: Admin, ctx: Ctx) -> Snippets:
    """Mint a read/write key bound to one client app, and the install snippets that use it."""
    token, _ = await create_key(
        ctx.keys, principal.user_id, body.client, ("read", "write"), f"{body.client} (dashboard)"
    )
    return Snippets(
        client=body.client, api_key=token, url=ctx.mcp_url, snippets=snippets(ctx.mcp_url, body.client, token)
    )


def snippets(url: str, client: str, token: str) -> dict[str, str]:
    """How each MCP client is configured to reach `url` with `token`: a config file's JSON (its
    path in a comment first) or a command line."""
    header = f"Bearer {token}"
    remote = {"command": "npx", "args": ["-y", "mcp-remote", url, "--header", f"Authorization:{header}"]}
    http = {"url": url, "headers": {"Authorization": header}}
    forms = {
        "claude": ("claude_desktop_config.json", {"mcpServers": {"openmemory": remote}}),
        "cursor": ("~/.cursor/mcp.json", {"mcpServers": {"openmemory": http}}),
        "windsurf": (
            "~/.codeium/windsurf/mcp_config.json",
            {"mcpServers": {"openmemory": {"serverUrl": url, "headers": http["headers"]}}},
        ),
        "cline": (
            "cline_mcp_settings.json",
            {"mcpServers": {"openmemory": {**http, "type": "streamableHttp"}}},
        ),
        "vscode": (".vscode/mcp.json", {"servers": {"openmemory": {"type": "http", **http}}}),
    }
    out = {name: f"// {path}\n{json.dumps(config, indent=2)}" for name, (path, config) in forms.items()}
    out["claude-code"] = (
        f'claude mcp add --transport http openmemory {url} --header "Authorization: {header}"'
    )
    out["npx install-mcp"] = (
        f'npx install-mcp {url} --client {client} --oauth no --header "Authorization: {header}"'
    )
    return out
