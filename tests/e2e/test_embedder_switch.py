"""Switching the embedding model from the dashboard's settings, on a running system: ingest and
search reload with it, the stored memories are re-embedded into its collection, and search keeps
finding them, without a restart. The new model is an OpenAI-compatible embeddings API: the
recorded-response test server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from e2e_support import mcp_client, new_key

from openmemory_testing import RecordedOpenAITestServer, eventually, recorded, start_system, unique


async def test_a_new_embedder_applies_without_a_restart_and_keeps_the_memories(tmp_path: Path) -> None:
    user = unique("emb")
    # The recorded-response test server runs on loopback: the operator allows private URLs.
    system = start_system(tmp_path / "data", extra_env={"OPENMEMORY_ALLOW_PRIVATE_URLS": "true"})
    try:
        key = new_key(system, user, scopes="read,write,admin,operator")
        async with mcp_client(system.mcp_url, key) as client:
            await client.call("add_memories", text="I live in Lisbon. My sister Anna plays chess.")
            await client.call("add_memories", text="I'm allergic to peanuts.")
        admin = httpx.AsyncClient(
            base_url=system.admin_url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        before = (await admin.get("/stats")).json()["embedding_model"]
        vectors = json.loads(recorded("embeddings_8d.json"))
        async with RecordedOpenAITestServer([], embeddings=vectors) as api:
            change = {"provider": "openai", "model": "Recorded-Embed v1", "base_url": api.base_url,
                      "dimensions": 8, "api_key": "sk-test-embed"}  # fmt: skip
            saved = await admin.put("/settings", json={"embedder": change})
            assert saved.status_code == 200 and saved.json()["embedder"]["api_key_set"] is True

            async def switched() -> bool:
                try:
                    stats = (await admin.get("/stats")).json()
                except httpx.HTTPError:
                    return False
                return stats.get("embedding_model") == "recorded-embed-v1-8" and stats.get("total") == 3

            assert await eventually(switched, timeout=30, interval=0.5)

            async def found() -> list[str]:
                async with mcp_client(system.mcp_url, key) as client:
                    try:
                        result = await client.call("search_memory", query="which city is home", limit=1)
                    except Exception:
                        return []
                    return [m["memory"] for m in result["results"]]

            assert await eventually(found, timeout=30, interval=0.5) == ["User lives in Lisbon."]
            assert any(r.get("input") for r in api.requests)  # the new model embedded
        assert before == "minilm-l6-v2-int8-384"
        await admin.aclose()
        assert "sk-test-embed" not in system.log()
    finally:
        system.stop()
