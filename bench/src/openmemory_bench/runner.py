"""`openmemory bench locomo`: LoCoMo through the product's own ingest worker (over NATS) and search.

Each conversation is its own user; every turn is one memory (verbatim, with its session's date as the
time it refers to and its `dia_id` in metadata). Every question of categories 1-4 is asked through
the search service over NATS; in the same run the baselines rank the same turns: plain BM25 of each
turn's text and date (computed here, so nothing the product adds to its keyword vectors helps it),
and dense-only over the very same stored vectors.
"""

from __future__ import annotations

import asyncio
import pickle
import resource
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from openmemory_bench import learned
from openmemory_bench.crossval import Evaluations, cv_markdown, gain, recall_objective, run_cv
from openmemory_bench.locomo import CATEGORIES, Conversation, load
from openmemory_bench.rerank import Asked, UserMemories, collect
from openmemory_bench.retrieval import Bm25, Scoreboard, p95
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.servers import embedded_falkordb, embedded_nats, start_embedded
from openmemory_core.settings import SearchSettings
from openmemory_core.stores import open_graph_store, open_vector_store
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.vectors import VectorStore
from openmemory_search.ranking import SHIPPED
from openmemory_search.service import SearchService
from openmemory_testing.stack import running_services

PARTITIONS = 8
REPOSITORY = Path(__file__).resolve().parents[3]


@dataclass
class Stack:
    """The pieces the product runs, wired in one process over a real NATS and FalkorDB."""

    client: Bus
    vectors: VectorStore
    graph: GraphStore
    embedder: MiniLMEmbedder


@asynccontextmanager
async def stack(root: Path, engine: str = "edge") -> AsyncIterator[Stack]:
    nats_proc, nats_url = await start_embedded(embedded_nats, root / "nats")
    graph_proc, graph_url = await start_embedded(embedded_falkordb, root / "graph")
    embedder = MiniLMEmbedder()
    vectors = open_vector_store(embedder.model_tag, embedder.dimension, root, engine=engine)
    await vectors.ensure_collection()
    graph = open_graph_store(graph_url)
    await graph.ensure_schema()
    # The worker embeds as an ingest process of a split deployment does: its own model, no spinning.
    ingest_embedder = MiniLMEmbedder(spinning=False)
    try:
        async with running_services(
            nats_url, vectors, graph, embedder, PARTITIONS, ingest_embedder
        ) as client:
            yield Stack(client, vectors, graph, embedder)
    finally:
        await vectors.close()
        await graph.close()
        await graph_proc.stop()
        await nats_proc.stop()


def _user(conversation: Conversation) -> str:
    return f"locomo-{conversation.sample_id}"


def _command(conversation: Conversation, index: int, infer: bool = False) -> c.AddCommand:
    """A turn as `add_memories` would send it: verbatim ("Name: text"), or with `infer` through the
    extractor, which reads "Name: …" as that speaker's words."""
    turn = conversation.turns[index]
    return c.AddCommand(
        user_id=_user(conversation), app="locomo", text=turn.text, infer=infer, occurred_at=turn.at,
        metadata={"dia_id": turn.dia_id, "session": turn.session, "speaker": turn.speaker},
    )  # fmt: skip


async def _add(client: Bus, command: c.AddCommand) -> c.CommandResult:
    async with client.result_waiter(command.request_id) as result:
        await client.publish_command(command)
        return await asyncio.wait_for(result, 60)


def arrival_order(conversations: list[Conversation]) -> list[tuple[Conversation, int]]:
    """Every user adds at once, each in their own order: the first turn of every conversation, then
    the second, and so on. (One conversation after another would keep one partition busy at a time,
    which measures a single user's latency, not what a worker can do.)"""
    longest = max((len(conversation.turns) for conversation in conversations), default=0)
    return [
        (conversation, index)
        for index in range(longest)
        for conversation in conversations
        if index < len(conversation.turns)
    ]


async def ingest(
    s: Stack, conversations: list[Conversation], latency_samples: int, infer: bool = False
) -> dict[str, Any]:
    """Add every turn. The first turns go one at a time (add-to-searchable latency: from publishing to
    the result, after which search sees the memory); the rest go in parallel (throughput)."""
    # user -> memory id -> the turns it holds
    owner: dict[str, dict[str, list[str]]] = {_user(conversation): {} for conversation in conversations}
    latencies: list[float] = []
    pending = [(conv, _command(conv, index, infer)) for conv, index in arrival_order(conversations)]
    facts = 0

    def record(conversation: Conversation, command: c.AddCommand, done: c.CommandResult) -> None:
        nonlocal facts
        if not done.ok:
            raise RuntimeError(f"ingest failed: {done.error}")
        # ADD, or NONE for a text stored already; with infer, every fact the turn gave (none for small talk)
        for result in done.results:
            if result.event in (c.ChangeKind.ADD, c.ChangeKind.NONE):
                facts += 1
                owner[_user(conversation)].setdefault(result.id, []).append(str(command.metadata["dia_id"]))

    for conversation, command in pending[:latency_samples]:
        started = time.perf_counter()
        record(conversation, command, await _add(s.client, command))
        latencies.append(1000 * (time.perf_counter() - started))
    rest = pending[latency_samples:]
    started = time.perf_counter()
    window = asyncio.Semaphore(256)

    async def one(conversation: Conversation, command: c.AddCommand) -> None:
        async with window:
            record(conversation, command, await _add(s.client, command))

    await asyncio.gather(*(one(conv, cmd) for conv, cmd in rest))
    elapsed = time.perf_counter() - started
    return {
        "owner": owner,
        "memories": len(pending),
        "facts": facts,
        "add_to_searchable_p50": statistics.median(latencies) if latencies else None,
        "add_to_searchable_p95": p95(latencies),
        "memories_per_s": len(rest) / elapsed if rest else None,
    }


def _dated(text: str, at: datetime) -> str:
    """A turn's text with its date, as the product's keyword vectors carry it (without the context)."""
    return f"{text} {at.day} {at:%B %Y}"


def _turns(memory_ids: list[str], owner: dict[str, list[str]]) -> list[str]:
    ranked: list[str] = []
    for memory_id in memory_ids:
        ranked.extend(t for t in owner.get(memory_id, []) if t not in ranked)
    return ranked


async def ask(
    s: Stack, conversations: list[Conversation], owner: dict[str, dict[str, list[str]]]
) -> dict[str, Any]:
    boards = {"hybrid": Scoreboard(), "fusion": Scoreboard(), "bm25": Scoreboard(), "dense": Scoreboard()}
    latencies: list[float] = []
    product: dict[tuple[str, int], list[str]] = {}  # the service's answer to each question, for --cv
    # the same search with the learned order off, in this process over the same stores
    fusion = SearchService(
        s.vectors, s.graph, s.embedder, SearchSettings(), ranking=replace(SHIPPED, learned=None)
    )
    learned_gain: list[float] = []  # per question: the objective of the shipped order less the fusion's
    for conversation in conversations:
        user = _user(conversation)
        bm25 = Bm25({turn.dia_id: _dated(turn.text, turn.at) for turn in conversation.turns})
        for number, question in enumerate(conversation.questions):
            category = CATEGORIES[question.category]
            started = time.perf_counter()
            answer = await s.client.query(
                c.Query.SEARCH,
                c.SearchRequest(user_id=user, query=question.text, limit=10),
                c.SearchResponse,
                30,
            )
            latencies.append(1000 * (time.perf_counter() - started))
            product[(conversation.sample_id, number)] = _turns(
                [h.memory.id for h in answer.hits], owner[user]
            )
            boards["hybrid"].add(category, product[(conversation.sample_id, number)], question.evidence)
            alone = await fusion.search(c.SearchRequest(user_id=user, query=question.text, limit=10))
            fused = _turns([h.memory.id for h in alone.hits], owner[user])
            boards["fusion"].add(category, fused, question.evidence)
            if question.evidence:
                learned_gain.append(
                    recall_objective(product[(conversation.sample_id, number)], question.evidence)
                    - recall_objective(fused, question.evidence)
                )
            boards["bm25"].add(category, bm25.search(question.text, 10), question.evidence)
            (vector,) = await s.embedder.embed([question.text])
            dense = await s.vectors.dense_search(user, vector, 10)
            boards["dense"].add(
                category, _turns([h.memory.id for h in dense], owner[user]), question.evidence
            )
    return {"boards": {name: board.report() for name, board in boards.items()}, "product": product,
            "learned_gain": gain(learned_gain) if learned_gain else None,
            "search_p50": statistics.median(latencies), "search_p95": p95(latencies)}  # fmt: skip


def _ratios(hybrid: dict[str, float], baseline: dict[str, float]) -> dict[str, float | None]:
    return {
        k: (round(v / baseline[k], 3) if baseline.get(k) else None)
        for k, v in hybrid.items()
        if k != "questions"
    }


async def run(
    data: Path,
    conversations_limit: int | None = None,
    latency_samples: int = 200,
    engine: str = "edge",
    infer: bool = False,
    cv: bool = False,
    cv_cache: Path | None = None,
) -> dict[str, Any]:
    """The retrieval report; with `cv`, also leave-one-conversation-out cross-validation of the ranking
    constants over candidates cached once (`cv_cache`: a file outside the repository, written on the
    first run and read instead of ingesting on the next; it holds the conversations' text)."""
    cached = await asyncio.to_thread(_read_cache, cv_cache) if cv else None
    if cached is not None:
        report: dict[str, Any] = cached["report"]
        return report | _cross_validated(cached["asked"], cached["users"], cached["candidates"])
    conversations = load(data)[:conversations_limit]
    candidates = SearchSettings().candidates
    dropped = sum(len(conv.dropped_evidence) for conv in conversations)
    with tempfile.TemporaryDirectory(prefix="openmemory-bench-") as tmp:
        async with stack(Path(tmp), engine) as s:
            added = await ingest(s, conversations, latency_samples, infer)
            asked = await ask(s, conversations, added["owner"])
            if cv:
                questions, users = await collect(
                    s, conversations, added["owner"], asked["product"], candidates
                )
    hybrid = asked["boards"]["hybrid"]
    report = {
        "data": str(data),
        "vector_engine": engine,
        "infer": infer,  # turns through the extractor (recall counts the source turns of the facts found)
        "conversations": len(conversations),
        "questions": hybrid["overall"]["questions"],
        "overall": hybrid["overall"],
        "by_category": hybrid["by_category"],
        "baselines": {name: asked["boards"][name] for name in ("bm25", "dense")},
        # the shipped order against the same search with the learned order off: mean of R@5 and R@10
        # per question, paired, with its standard error
        "fusion_alone": asked["boards"]["fusion"],
        "learned_gain": asked["learned_gain"],
        "ratio_to": {
            name: _ratios(hybrid["overall"], asked["boards"][name]["overall"]) for name in ("bm25", "dense")
        },
        "latency_ms": {
            "search_p50": round(asked["search_p50"], 2),
            "search_p95": round(asked["search_p95"] or 0, 2),
            "add_to_searchable_p50": round(added["add_to_searchable_p50"] or 0, 2),
            "add_to_searchable_p95": round(added["add_to_searchable_p95"] or 0, 2),
        },
        "throughput": {
            "memories": added["memories"],
            "facts": added["facts"],
            "memories_per_s": round(added["memories_per_s"] or 0, 1),
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "evidence": {
            "dropped": dropped,
            "dropped_ids": sorted({d for conv in conversations for d in conv.dropped_evidence}),
            "repaired": sum(conv.repaired_evidence for conv in conversations),
        },
    }
    if not cv:
        return report
    if cv_cache is not None:
        cache = {"report": report, "asked": questions, "users": users, "candidates": candidates}
        await asyncio.to_thread(cv_cache.write_bytes, pickle.dumps(cache))
    return report | _cross_validated(questions, users, candidates)


def _cross_validated(asked: list[Asked], users: dict[str, UserMemories], candidates: int) -> dict[str, Any]:
    """The fusion's constants tuned and measured leave-one-conversation-out, and the learned order
    trained and measured the same way (`learned.run`), nested over each fold's constants as
    `python -m openmemory_bench.learned --nested` chooses them (`learned.tune`: the grid without the
    steps that ship off, which the model never runs under), so that both print the same figures."""
    evaluate = Evaluations(asked, users, candidates)  # the two tunings share what they evaluated
    return {
        "cv": run_cv(asked, users, candidates, evaluate=evaluate),
        "learned": learned.run(
            asked, users, candidates, picks=learned.tune(asked, users, candidates, evaluate=evaluate)
        ),
        "learned_over_shipped": learned.run(asked, users, candidates),
    }


def _read_cache(path: Path | None) -> dict[str, Any] | None:
    """The --cv cache, if there is one; refused inside the repository, where LoCoMo must never be."""
    if path is None:
        return None
    if path.resolve().is_relative_to(REPOSITORY):
        raise ValueError("the --cv-cache file holds LoCoMo's text: keep it outside the repository")
    if not path.exists():
        return None
    cached: dict[str, Any] = pickle.loads(path.read_bytes())  # a file this bench wrote
    return cached


def markdown(report: dict[str, Any]) -> str:
    rows = [("hybrid (ours)", report["overall"])] + [
        (f"{name} baseline", report["baselines"][name]["overall"]) for name in ("bm25", "dense")
    ]
    if "fusion_alone" in report:  # reports written before it have no such row
        rows.insert(1, ("hybrid, the learned order off", report["fusion_alone"]["overall"]))
    lines = [
        f"LoCoMo: {report['conversations']} conversations, {report['questions']} questions (categories 1-4)"
        + (
            f", turns through the extractor ({report['throughput']['facts']} facts)"
            if report.get("infer")
            else ""
        ),
        "",
        "| retriever | R@5 | R@10 | hit@10 | all@10 | MRR |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in rows:
        lines.append(
            f"| {name} | {m['recall@5']} | {m['recall@10']} | {m['hit@10']} | {m['all@10']} | {m['mrr']} |"
        )
    lines += ["", "| category | questions | R@5 | R@10 | MRR |", "|---|---|---|---|---|"]
    for name, m in report["by_category"].items():
        lines.append(f"| {name} | {m['questions']} | {m['recall@5']} | {m['recall@10']} | {m['mrr']} |")
    lat, thr = report["latency_ms"], report["throughput"]
    if report.get("learned_gain"):
        mean, se = report["learned_gain"]
        lines += [
            "",
            "learned order against the fusion alone, mean of R@5 and R@10 per question: "
            f"{mean:+.4f} ± {se:.4f}",
        ]
    lines += [
        "",
        f"search p50 {lat['search_p50']} ms, p95 {lat['search_p95']} ms; add-to-searchable p50 "
        f"{lat['add_to_searchable_p50']} ms, p95 {lat['add_to_searchable_p95']} ms; ingest "
        f"{thr['memories_per_s']} memories/s; peak RSS {report['peak_rss_mb']} MB; evidence ids dropped "
        f"{report['evidence']['dropped']}, repaired {report['evidence']['repaired']}",
    ]
    if "cv" in report:
        lines += ["", cv_markdown(report["cv"])]
    if "learned" in report:
        lines += ["", "### The learned order (held out)", "", learned.markdown(report["learned"])]
        lines += ["", learned.markdown(report["learned_over_shipped"])]
    return "\n".join(lines)
