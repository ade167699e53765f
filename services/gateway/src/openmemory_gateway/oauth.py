"""OAuth for MCP clients: protected-resource metadata (RFC 9728) and bearer tokens checked by the
authorization server's introspection endpoint (RFC 7662), through the MCP SDK's `TokenVerifier`.

A token's subject (`sub`) is the user, its client (`client_id`) the app, and its scopes `read`,
`write` (or `openmemory:read`, `openmemory:write`) what it may do. A token issued for another
resource (`aud`) is refused.
"""

from __future__ import annotations

import hashlib
import re
import time

import httpx
from mcp.server.auth.provider import AccessToken, TokenVerifier

from openmemory_core import contracts as c
from openmemory_core.errors import Unauthorized
from openmemory_core.settings import OAuthSettings

_NAME = re.compile(c.ID_NAME_PATTERN)
SCOPE_NAMES = {"read": "read", "write": "write", "openmemory:read": "read", "openmemory:write": "write"}


class IntrospectionTokenVerifier(TokenVerifier):
    def __init__(self, settings: OAuthSettings, resource_url: str) -> None:
        if not settings.introspection_url:
            raise ValueError("OAuth needs OPENMEMORY_OAUTH_INTROSPECTION_URL")
        self.settings = settings
        self.resource_url = resource_url
        secret = settings.client_secret.get_secret_value() if settings.client_secret else None
        self._auth: httpx.Auth | None = (
            httpx.BasicAuth(settings.client_id, secret) if settings.client_id and secret else None
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        assert self.settings.introspection_url is not None
        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout_seconds, auth=self._auth) as http:
                answer = await http.post(self.settings.introspection_url, data={"token": token})
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        try:
            claims = answer.json()
        except ValueError:  # not JSON: no authorization server answers like that; refuse the token
            return None
        if not isinstance(claims, dict) or claims.get("active") is not True:
            return None
        expires = claims.get("exp")
        if isinstance(expires, int | float) and expires <= time.time():
            return None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience] if audience else []
        if audiences and self.resource_url not in audiences:
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or "oauth"),
            scopes=str(claims.get("scope") or "").split(),
            expires_at=int(expires) if isinstance(expires, int | float) else None,
            subject=str(claims["sub"]) if claims.get("sub") else None,
            claims=claims,
        )


def _name(value: str, prefix: str) -> str:
    """An id usable as our user or app name: the value itself when it fits, else a stable digest."""
    return value if _NAME.fullmatch(value) else f"{prefix}-{hashlib.sha256(value.encode()).hexdigest()[:24]}"


def principal_of_token(token: AccessToken, default_scopes: list[str]) -> c.Principal:
    """The user is the token's subject; the app is its OAuth client, whatever the URL says."""
    if not token.subject:
        raise Unauthorized("the OAuth token names no user (no 'sub')")
    scopes = sorted({SCOPE_NAMES[s] for s in token.scopes if s in SCOPE_NAMES}) or default_scopes
    app = _name(token.client_id, "client")
    return c.Principal(
        user_id=_name(token.subject, "user"),
        app=app,
        key_id=f"oauth:{app}:{token.subject}",
        scopes=tuple(scopes),
    )
