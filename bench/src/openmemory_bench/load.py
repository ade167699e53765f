"""`openmemory bench load`: many MCP clients adding and searching at once against a whole system.

It starts `openmemory run` (all components, embedded stores) in a temporary data dir, mints one key
per client (one user each), and runs `clients` official MCP clients over streamable HTTP for
`seconds`: each alternates an add (a short first-person sentence, extracted by the local rules) and
a search. It reports operations per second, latency p50/p95 per tool, and every error (the goal is
none). The per-key rate limit is lifted for the run: this measures capacity, not the limiter.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from openmemory_bench.retrieval import p95

SUBJECTS = [
    "tea",
    "chess",
    "Lisbon",
    "the cello",
    "ramen",
    "hiking",
    "Rust",
    "my sister Ana",
    "Berlin",
    "yoga",
]
VERBS = [
    "I like",
    "I often think about",
    "I am learning about",
    "I talked to a friend about",
    "I wrote about",
]


async def _client(
    url: str, key: str, deadline: float, latencies: dict[str, list[float]], errors: list[str]
) -> None:
    rng = random.Random(key)
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        turn = 0
        while time.monotonic() < deadline:
            turn += 1
            if turn % 2:
                tool = "add_memories"
                args: dict[str, Any] = {"text": f"{rng.choice(VERBS)} {rng.choice(SUBJECTS)} ({turn})."}
            else:
                tool, args = "search_memory", {"query": f"what about {rng.choice(SUBJECTS)}?"}
            started = time.perf_counter()
            try:
                result = await session.call_tool(tool, args)
                if result.is_error:
                    errors.append(f"{tool}: {' '.join(getattr(c, 'text', '') for c in result.content)[:200]}")
            except Exception as exc:  # a transport failure counts as an error, and the client goes on
                errors.append(f"{tool}: {type(exc).__name__}: {exc}"[:200])
            latencies.setdefault(tool, []).append((time.perf_counter() - started) * 1000)


async def run(clients: int, seconds: float) -> dict[str, Any]:
    from openmemory_testing import start_system

    with tempfile.TemporaryDirectory(prefix="om-load-") as tmp:
        env = {"OPENMEMORY_GATEWAY_RATE_LIMIT_PER_MINUTE": "1000000", "OPENMEMORY_LOG_LEVEL": "WARNING"}
        system = start_system(Path(tmp) / "data", extra_env=env)
        try:
            keys = [
                system.cli("keys", "create", "--user", f"load-{i}").stdout.strip() for i in range(clients)
            ]
            latencies: dict[str, list[float]] = {}
            errors: list[str] = []
            started = time.monotonic()
            deadline = started + seconds
            await asyncio.gather(*(_client(system.mcp_url, k, deadline, latencies, errors) for k in keys))
            elapsed = time.monotonic() - started
        finally:
            system.stop()
    operations = sum(len(v) for v in latencies.values())
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "operations": operations,
        "throughput_ops_per_s": round(operations / elapsed, 1),
        "by_tool": {
            tool: {
                "calls": len(values),
                "per_s": round(len(values) / elapsed, 1),
                "p50_ms": round(statistics.median(values), 1),
                "p95_ms": round(p95(values) or 0.0, 1),
            }
            for tool, values in sorted(latencies.items())
        },
        "errors": len(errors),
        "error_samples": errors[:10],
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['clients']} MCP clients for {report['seconds']} s: {report['operations']} calls, "
        f"{report['throughput_ops_per_s']} calls/s, {report['errors']} errors",
        "",
        "| tool | calls | per s | p50 ms | p95 ms |",
        "|---|---|---|---|---|",
    ]
    for tool, row in report["by_tool"].items():
        lines.append(f"| {tool} | {row['calls']} | {row['per_s']} | {row['p50_ms']} | {row['p95_ms']} |")
    return "\n".join(lines)
