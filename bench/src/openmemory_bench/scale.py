"""`openmemory bench scale`: search latency on a whole system as the store grows (10k, 100k, …),
inside the search service and end to end over MCP, with the gateway's time per stage.

It starts `openmemory run` (every component, embedded stores) in a temporary data dir, as a user
would. The memories are synthetic but shaped like real ones (first-person facts about people,
places, food, work, hobbies and dates, from word lists with a fixed seed), and every one goes
through the real ingest path: an `add` command on the bus (verbatim, `infer` off, so no LLM), the
ingest worker embedding it and writing the vector store and the graph (its names become entities).
Ten users share the store; the first holds `LARGEST_SHARE` of the memories, the nine others the
rest in equal parts.

Then, at each size, the same questions are asked two ways, in alternation:
- to the search service: the NATS request the gateway itself makes (`om.query.search`), timed by the
  bench from send to answer;
- over MCP: the official client (streamable HTTP) with an API key, through the gateway's HTTP
  endpoint (authentication, rate limit, app check, the search request, the answer, the access log).
The difference of the two, p50 from p50 and p95 from p95, is what lies between a client and the
search service. The gateway's `openmemory_gateway_stage_seconds` histogram (read from `/metrics`
before and after) gives where that time goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from openmemory_bench.retrieval import p95
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.runtime import read_endpoints

PEOPLE = "Anna Tom Priya Carlos Lea Max Sam Zoe Ahmed Hannah Leo Mia Ravi Yuki Omar Ines Jake Nora".split()
PLACES = "Lisbon Berlin Vienna Oslo Tokyo Nairobi Toronto Dublin Lagos Seattle Madrid Lyon Porto Rome".split()
FOODS = "ramen sushi tacos pasta curry dumplings falafel pho paella croissants kimchi risotto".split()
HOBBIES = (
    "hiking climbing painting chess yoga running cycling pottery surfing baking gardening photography".split()
)
ORGS = "Google Spotify Shopify Netflix Acme Nimbus IKEA Deloitte Amazon Siemens".split()
TEMPLATES = [
    "User had {food} with {person} in {place} on {date}.",
    "User's friend {person} moved to {place} on {date}.",
    "User went {hobby} with {person} on {date}.",
    "User started a project at {org} about {hobby} on {date}.",
    "{person} recommended a {food} place in {place} to User.",
    "User is planning a trip to {place} with {person} for {hobby}.",
    "User's colleague {person} at {org} loves {food}.",
    "User booked a {hobby} class in {place} for {date}.",
]
QUERIES = [
    "where did I eat {food}?", "who moved to {place}?", "when did I go {hobby} with {person}?",
    "what does {person} like?", "trips to {place}", "my projects at {org}",
]  # fmt: skip

USERS = 10
LARGEST_SHARE = 0.55
#: Adds in flight at once while building (each waits for its result, as a client of the bus would).
WINDOW = 256
WARMUP = 20
STAGE_METRIC = "openmemory_gateway_stage_seconds"
SERVICE_METRIC = "openmemory_search_query_duration_seconds"
SEARCH_STAGE_METRIC = "openmemory_search_stage_seconds"


def synthetic(n: int, seed: int = 7) -> list[tuple[str, datetime]]:
    rng = random.Random(seed)
    start = datetime(2021, 1, 1, tzinfo=UTC)
    out = []
    for _ in range(n):
        when = start + timedelta(days=rng.randrange(1400))
        words = {
            "person": rng.choice(PEOPLE), "place": rng.choice(PLACES), "food": rng.choice(FOODS),
            "hobby": rng.choice(HOBBIES), "org": rng.choice(ORGS), "date": f"{when:%-d %B %Y}",
        }  # fmt: skip
        out.append((rng.choice(TEMPLATES).format(**words), when))
    return out


def queries(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(QUERIES).format(
            person=rng.choice(PEOPLE),
            place=rng.choice(PLACES),
            food=rng.choice(FOODS),
            hobby=rng.choice(HOBBIES),
            org=rng.choice(ORGS),
        )
        for _ in range(n)
    ]


def user_name(index: int) -> str:
    return f"scale-{index}"


def asker(i: int) -> int:
    """Who asks the `i`-th question: every other one the largest user, the rest the others in turn."""
    return 0 if i % 2 == 0 else 1 + (i // 2) % (USERS - 1)


def owners(n: int, seed: int = 5) -> list[int]:
    """Which user holds each memory: user 0 about `LARGEST_SHARE`, the others the rest evenly."""
    rng = random.Random(seed)
    rest = (1 - LARGEST_SHARE) / (USERS - 1)
    return rng.choices(range(USERS), weights=[LARGEST_SHARE] + [rest] * (USERS - 1), k=n)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2) if values else 0.0,
        "p95_ms": round(p95(values) or 0.0, 2),
        "n": len(values),
    }


# ---- the gateway's and the search service's own histograms, from /metrics ------------------------


def histograms(text: str, name: str, label: str) -> dict[str, dict[str, Any]]:
    """Every series of one histogram by the value of `label`: its count, sum and cumulative buckets."""
    found: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            series = found.setdefault(sample.labels.get(label, ""), {"count": 0.0, "sum": 0.0, "buckets": {}})
            if sample.name.endswith("_count"):
                series["count"] = sample.value
            elif sample.name.endswith("_sum"):
                series["sum"] = sample.value
            elif sample.name.endswith("_bucket"):
                series["buckets"][float(sample.labels["le"])] = sample.value
    return found


def _quantile(buckets: dict[float, float], share: float) -> float:
    """A quantile from cumulative bucket counts, interpolated within its bucket (as Prometheus does)."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    if not total:
        return 0.0
    rank, lower, below = share * total, 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return lower
            inside = buckets[edge] - below
            return lower + (edge - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = edge, buckets[edge]
    return lower


def difference(after: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per series: calls, mean and interpolated p50/p95 (ms) of what was observed between two reads."""
    rows: dict[str, Any] = {}
    for name, series in after.items():
        was = before.get(name, {"count": 0.0, "sum": 0.0, "buckets": {}})
        count = series["count"] - was["count"]
        if count <= 0:
            continue
        buckets = {edge: n - was["buckets"].get(edge, 0.0) for edge, n in series["buckets"].items()}
        rows[name] = {
            "calls": int(count),
            "mean_ms": round(1000 * (series["sum"] - was["sum"]) / count, 3),
            "p50_ms": round(1000 * _quantile(buckets, 0.5), 3),
            "p95_ms": round(1000 * _quantile(buckets, 0.95), 3),
        }
    return rows


# ---- building the store through ingest -------------------------------------------------------------


async def _add(bus: Bus, command: c.AddCommand) -> None:
    async with bus.result_waiter(command.request_id) as result:
        await bus.publish_command(command)
        done = await asyncio.wait_for(result, 300)
    if not done.ok:
        raise RuntimeError(f"ingest failed: {done.error}")


async def build(bus: Bus, corpus: list[tuple[str, datetime]], who: list[int], start: int, end: int) -> float:
    """Add memories `start`..`end` through the bus, every user at once; the memories per second."""
    window = asyncio.Semaphore(WINDOW)
    began = time.perf_counter()
    done = 0
    step = max(1, (end - start) // 10)

    async def one(index: int) -> None:
        nonlocal done
        text, when = corpus[index]
        command = c.AddCommand(
            user_id=user_name(who[index]), app="scale", text=text, infer=False, occurred_at=when
        )
        async with window:
            await _add(bus, command)
        done += 1
        if done % step == 0:
            rate = done / max(1e-9, time.perf_counter() - began)
            print(f"  {start + done:,} of {end:,} memories stored ({rate:.0f}/s)", flush=True)

    await asyncio.gather(*(one(i) for i in range(start, end)))
    return (end - start) / max(1e-9, time.perf_counter() - began)


# ---- the two ways of asking ------------------------------------------------------------------------


class McpUser:
    """One user's MCP session (official client, streamable HTTP, the user's API key)."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def search(self, query: str) -> dict[str, Any]:
        result = await self.session.call_tool("search_memory", {"query": query, "limit": 10})
        if result.is_error:
            raise RuntimeError(" ".join(getattr(part, "text", "") for part in result.content)[:300])
        return dict(result.structured_content or {})


@contextlib.asynccontextmanager
async def mcp_user(url: str, key: str) -> AsyncIterator[McpUser]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield McpUser(session)


async def _service(bus: Bus, user: str, query: str) -> c.SearchResponse:
    # The very request the gateway sends for an API key of any app ("default").
    request = c.SearchRequest(user_id=user, app="default", query=query, limit=10)
    return await bus.query(c.Query.SEARCH, request, c.SearchResponse, 30)


async def measure(bus: Bus, sessions: dict[int, McpUser], metrics_url: str, asked: int) -> dict[str, Any]:
    """Ask `asked` questions both ways, alternating which way goes first; half to the largest user,
    half spread over the others."""
    plan = [(asker(i), q) for i, q in enumerate(queries(asked + WARMUP))]
    for who, question in plan[:WARMUP]:
        await _service(bus, user_name(who), question)
        await sessions[who].search(question)
    async with httpx.AsyncClient(timeout=30) as http:
        before = (await http.get(metrics_url)).text
        times: dict[str, dict[str, list[float]]] = {
            way: {"largest": [], "others": []} for way in ("service", "mcp")
        }
        graph_hits = 0
        for i, (who, question) in enumerate(plan[WARMUP:]):
            group = "largest" if who == 0 else "others"
            for way in ("service", "mcp") if i % 2 == 0 else ("mcp", "service"):
                started = time.perf_counter()
                if way == "service":
                    await _service(bus, user_name(who), question)
                else:
                    answer = await sessions[who].search(question)
                    graph_hits += any("graph" in r.get("signals", []) for r in answer.get("results", []))
                times[way][group].append(1000 * (time.perf_counter() - started))
        after = (await http.get(metrics_url)).text
    report: dict[str, Any] = {}
    for way, groups in times.items():
        report[way] = {group: summary(values) for group, values in groups.items()}
        report[way]["all"] = summary(groups["largest"] + groups["others"])
    report["between"] = {
        group: {
            "p50_ms": round(report["mcp"][group]["p50_ms"] - report["service"][group]["p50_ms"], 2),
            "p95_ms": round(report["mcp"][group]["p95_ms"] - report["service"][group]["p95_ms"], 2),
        }
        for group in ("all", "largest", "others")
    }
    report["stages"] = difference(
        histograms(after, STAGE_METRIC, "stage"), histograms(before, STAGE_METRIC, "stage")
    )
    service = difference(
        histograms(after, SERVICE_METRIC, "query"), histograms(before, SERVICE_METRIC, "query")
    )
    report["service_histogram"] = service.get("search")
    report["search_stages"] = difference(
        histograms(after, SEARCH_STAGE_METRIC, "stage"), histograms(before, SEARCH_STAGE_METRIC, "stage")
    )
    report["answers_with_graph_signal"] = round(graph_hits / max(1, asked), 3)
    return report


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def run(sizes: list[int], questions: int = 200, engine: str = "edge") -> dict[str, Any]:
    from openmemory_testing import start_system

    sizes = sorted(set(sizes))
    corpus, who = synthetic(max(sizes)), owners(max(sizes))
    results: dict[str, Any] = {"engine": engine, "users": USERS, "largest_share": LARGEST_SHARE, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="openmemory-scale-") as tmp:
        env = {"OPENMEMORY_LOG_LEVEL": "WARNING", "OPENMEMORY_VECTOR_ENGINE": engine}
        system = start_system(Path(tmp) / "data", extra_env=env, timeout=180)
        bus: Bus | None = None
        try:
            endpoints = read_endpoints(system.data_dir)
            assert endpoints is not None, "the system wrote no endpoints"
            bus = await Bus.connect(str(endpoints["nats_url"]), "bench-scale", c.DEFAULT_PARTITIONS)
            keys = {
                u: system.cli("keys", "create", "--user", user_name(u)).stdout.strip() for u in range(USERS)
            }
            stored = 0
            for size in sizes:
                print(f"building {size:,} memories through ingest…", flush=True)
                started = time.perf_counter()
                rate = await build(bus, corpus, who, stored, size)
                build_s = time.perf_counter() - started
                stored = size
                async with contextlib.AsyncExitStack() as opened:
                    sessions = {
                        u: await opened.enter_async_context(mcp_user(system.mcp_url, keys[u]))
                        for u in range(USERS)
                    }
                    measured = await measure(bus, sessions, f"{system.gateway_url}/metrics", questions)
                measured.update(
                    memories=size,
                    largest_user_memories=sum(1 for w in who[:size] if w == 0),
                    build_s=round(build_s, 1),
                    ingest_memories_per_s=round(rate, 1),
                    load_average=[round(x, 2) for x in os.getloadavg()],
                    cpus=os.cpu_count(),
                    peak_rss_mb=_peak_rss_mb(system.process.pid),
                )
                results["sizes"][str(size)] = measured
                print(markdown_size(measured), flush=True)
        finally:
            try:
                if bus is not None:
                    await bus.close()
            finally:
                system.stop()
    return results


def markdown_size(r: dict[str, Any]) -> str:
    s, m, b = r["service"], r["mcp"], r["between"]
    lines = [
        f"### {r['memories']:,} memories, {USERS} users (the largest holds {r['largest_user_memories']:,}); "
        f"{s['all']['n']} searches each way",
        f"built through ingest in {r['build_s']} s ({r['ingest_memories_per_s']} memories/s); "
        f"load average {' / '.join(str(x) for x in r['load_average'])} on {r['cpus']} CPUs; "
        f"peak RSS {r['peak_rss_mb']} MB; "
        f"answers with a graph signal: {100 * r['answers_with_graph_signal']:.0f} % (the graph is written "
        "by every add; search asks it only when its weight is on, and it ships at 0)",
        "",
        "| search latency, ms (p50 / p95) | all | largest user | other users |",
        "|---|---|---|---|",
    ]
    rows = [("search service (NATS request)", s), ("over MCP (client → gateway → search)", m),
            ("between client and search service (MCP − service)", b)]  # fmt: skip
    for title, row in rows:
        cells = [f"{row[g]['p50_ms']} / {row[g]['p95_ms']}" for g in ("all", "largest", "others")]
        lines.append(f"| {title} | {' | '.join(cells)} |")
    hist = r.get("service_histogram")
    if hist:
        lines.append(
            f"\nThe search service's own histogram: mean {hist['mean_ms']} ms over {hist['calls']} searches."
        )
    if r.get("search_stages"):
        lines += _stage_table("Search service", r["search_stages"], SEARCH_STAGES)
    if r["stages"]:
        lines += _stage_table("Gateway", r["stages"], STAGE_ORDER)
        layer = mcp_layer_ms(r["stages"])
        if layer is not None:
            lines.append(f"| MCP layer (request − auth − rate_limit − tool − answer) | | {layer} | | |")
    return "\n".join(lines)


def _stage_table(who: str, stages: dict[str, Any], order: dict[str, int]) -> list[str]:
    """One histogram's stages as a markdown table, in the order they run."""
    lines = [
        "",
        f"{who}, per stage (its histogram; p50/p95 interpolated within buckets):",
        "",
        "| stage | calls | mean ms | p50 ms | p95 ms |",
        "|---|---|---|---|---|",
    ]
    for stage, row in sorted(stages.items(), key=lambda kv: order.get(kv[0], 99)):
        lines.append(f"| {stage} | {row['calls']} | {row['mean_ms']} | {row['p50_ms']} | {row['p95_ms']} |")
    return lines


#: The order a search passes through the gateway; `request` is the whole HTTP request, the others
#: are parts of it (`app_check`, `search_request` and `access_log` are parts of `tool`).
STAGE_ORDER = {"request": 0, "auth": 1, "rate_limit": 2, "tool": 3, "app_check": 4, "search_request": 5,
               "access_log": 6, "answer": 7}  # fmt: skip


#: A search's stages in the search service, in the order they run (`telemetry.SEARCH_STAGE`).
SEARCH_STAGES = {"embed": 0, "lists": 1, "more_lists": 2, "rank": 3}


def mcp_layer_ms(stages: dict[str, Any]) -> float | None:
    """The mean of what a request spends outside the gateway's own stages: the MCP SDK's part."""
    if not all(name in stages for name in ("request", "auth", "rate_limit", "tool", "answer")):
        return None
    parts = ("auth", "rate_limit", "tool", "answer")
    outside = float(stages["request"]["mean_ms"]) - sum(float(stages[name]["mean_ms"]) for name in parts)
    return round(outside, 3)


def markdown(report: dict[str, Any]) -> str:
    return "\n\n".join(markdown_size(r) for r in report["sizes"].values())
