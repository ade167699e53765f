"""OAuth-capable MCP clients: the gateway serves protected-resource metadata, challenges with it,
and accepts bearer tokens the authorization server vouches for (introspection), beside API keys."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from e2e_support import ToolFailed, mcp_client, new_key

from openmemory_core.servers import free_port
from openmemory_testing import OAuthIntrospectionTestServer, start_system, unique


async def test_oauth_tokens_work_beside_api_keys(tmp_path: Path) -> None:
    user = unique("oa")
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    now = int(time.time())
    tokens = {
        "tok-rw": {"active": True, "sub": user, "client_id": "claude-ai",
                   "scope": "openmemory:read openmemory:write", "exp": now + 3600, "aud": resource},
        "tok-ro": {"active": True, "sub": user, "client_id": "reader", "scope": "read", "exp": now + 3600},
        "tok-expired": {"active": True, "sub": user, "client_id": "x", "scope": "read", "exp": now - 10},
        "tok-other-resource": {"active": True, "sub": user, "client_id": "x", "scope": "read",
                               "aud": "https://elsewhere.example/mcp"},
        "tok-revoked": {"active": False},
    }  # fmt: skip
    async with OAuthIntrospectionTestServer(tokens, "openmemory-rs", "rs-secret") as auth_server:
        system = start_system(
            tmp_path / "data",
            gateway_port=port,
            extra_env={
                "OPENMEMORY_OAUTH_ISSUER_URL": auth_server.issuer_url,
                "OPENMEMORY_OAUTH_INTROSPECTION_URL": auth_server.introspection_url,
                "OPENMEMORY_OAUTH_CLIENT_ID": "openmemory-rs",
                "OPENMEMORY_OAUTH_CLIENT_SECRET": "rs-secret",
            },
        )
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                metadata = (
                    await http.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp")
                ).json()
                assert metadata["resource"] == resource
                assert metadata["authorization_servers"] == [auth_server.issuer_url + "/"]
                challenge = await http.post(resource, json={})
                assert challenge.status_code == 401
                assert 'resource_metadata="http://127.0.0.1:' in challenge.headers["www-authenticate"]
                for bad in ("tok-expired", "tok-other-resource", "tok-revoked", "tok-unknown"):
                    refused = await http.post(resource, json={}, headers={"Authorization": f"Bearer {bad}"})
                    assert refused.status_code == 401, bad
            async with mcp_client(resource, "tok-rw") as claude:
                await claude.call("add_memories", text="I prefer window seats on planes.", infer=False)
                assert await claude.texts("seat") == ["I prefer window seats on planes."]
            async with mcp_client(resource, "tok-ro") as reader:
                assert await reader.texts("seat") == ["I prefer window seats on planes."]
                with pytest.raises(ToolFailed, match="write"):
                    await reader.call("add_memories", text="I am read-only.")
            async with mcp_client(resource, new_key(system, user)) as by_key:  # API keys still work
                listed = await by_key.call("list_memories")
                assert [(m["memory"], m["app"]) for m in listed["results"]] == [
                    ("I prefer window seats on planes.", "claude-ai")
                ]
            assert auth_server.requests and {"token"} <= set(auth_server.requests[0])
        finally:
            system.stop()
