"""`openmemory bench facts --data FILE`: retrieval on memories as MCP clients store them.

Each user of the set is one user of the product. Their memories (mostly one-line facts, some longer
notes, some short fragments) go through ingest as `add_memories` would send them verbatim
(`infer: false`, issued at the memory's date), then every question goes through search three ways
over the same stores: the shipped ranking (the learned order on), the fusion alone (the learned order
off), and plain BM25 of the memories' texts computed here. The set was written by someone who had
not read the code, before the product was run on it: nothing was tuned on it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openmemory_bench.crossval import gain, recall_objective
from openmemory_bench.retrieval import Bm25, Scoreboard
from openmemory_bench.runner import stack
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.settings import SearchSettings
from openmemory_search.ranking import SHIPPED
from openmemory_search.service import SearchService

DATA = Path(__file__).resolve().parents[2] / "data" / "fact_retrieval_eval.json"
LIMIT = 10
WAYS = ("shipped (learned order)", "fusion alone", "bm25 baseline")


async def _add(client: Bus, user: str, text: str, day: str) -> c.CommandResult:
    at = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    command = c.AddCommand(user_id=user, app="bench", text=text, infer=False, issued_at=at)
    async with client.result_waiter(command.request_id) as result:
        await client.publish_command(command)
        return await asyncio.wait_for(result, 60)


def _reciprocal_rank(ranked: list[str], relevant: set[str]) -> float:
    return next((1.0 / (i + 1) for i, m in enumerate(ranked[:LIMIT]) if m in relevant), 0.0)


async def run(path: Path) -> dict[str, Any]:
    users = json.loads(await asyncio.to_thread(path.read_text))["users"]
    boards = {way: Scoreboard() for way in WAYS}
    first = dict.fromkeys(WAYS, 0)
    paired: dict[str, list[float]] = {"objective": [], "reciprocal rank": []}
    memories = questions = 0
    with tempfile.TemporaryDirectory(prefix="om-facts-") as tmp:
        async with stack(Path(tmp)) as s:
            searches = {
                WAYS[0]: SearchService(s.vectors, s.graph, s.embedder, SearchSettings(), ranking=SHIPPED),
                WAYS[1]: SearchService(
                    s.vectors, s.graph, s.embedder, SearchSettings(), ranking=replace(SHIPPED, learned=None)
                ),
            }
            for entry in users:
                user = f"facts-{entry['user']}"
                stored: dict[str, str] = {}  # stored memory id -> the set's id
                for memory in entry["memories"]:
                    result = await _add(s.client, user, memory["text"], memory["date"])
                    for summary in result.results:
                        stored.setdefault(summary.id, memory["id"])
                    memories += 1
                bm25 = Bm25({m["id"]: m["text"] for m in entry["memories"]})
                for question in entry["questions"]:
                    questions += 1
                    relevant = set(question["relevant"])
                    ranked: dict[str, list[str]] = {}
                    for way, search in searches.items():
                        request = c.SearchRequest(user_id=user, query=question["question"], limit=LIMIT)
                        hits = (await search.search(request)).hits
                        ranked[way] = list(
                            dict.fromkeys(stored[h.memory.id] for h in hits if h.memory.id in stored)
                        )
                    ranked[WAYS[2]] = bm25.search(question["question"], LIMIT)
                    for way in WAYS:
                        boards[way].add(question["kind"], ranked[way], tuple(relevant))
                        first[way] += bool(ranked[way]) and ranked[way][0] in relevant
                    shipped, fused = ranked[WAYS[0]], ranked[WAYS[1]]
                    paired["objective"].append(
                        recall_objective(shipped, question["relevant"])
                        - recall_objective(fused, question["relevant"])
                    )
                    paired["reciprocal rank"].append(
                        _reciprocal_rank(shipped, relevant) - _reciprocal_rank(fused, relevant)
                    )
    return {
        "data": str(path),
        "users": len(users),
        "memories": memories,
        "questions": questions,
        "ways": {way: boards[way].report() for way in WAYS},
        "hit@1": {way: round(first[way] / max(questions, 1), 4) for way in WAYS},
        "learned_against_fusion": {name: gain(diffs) for name, diffs in paired.items() if diffs},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['users']} users, {report['memories']} memories, {report['questions']} questions "
        f"({report['data']})",
        "",
        "| search | hit@1 | R@5 | R@10 | MRR |",
        "|---|---|---|---|---|",
    ]
    for way, figures in report["ways"].items():
        o = figures["overall"]
        lines.append(f"| {way} | {report['hit@1'][way]} | {o['recall@5']} | {o['recall@10']} | {o['mrr']} |")
    kinds = sorted(report["ways"][WAYS[0]]["by_category"])
    lines += ["", "| kind | questions | " + " | ".join(f"{w} R@5 / MRR" for w in WAYS) + " |"]
    lines.append("|---|---|" + "---|" * len(WAYS))
    for kind in kinds:
        cells = []
        for way in WAYS:
            k = report["ways"][way]["by_category"][kind]
            cells.append(f"{k['recall@5']} / {k['mrr']}")
        n = report["ways"][WAYS[0]]["by_category"][kind]["questions"]
        lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, (mean, se) in report["learned_against_fusion"].items():
        lines.append(f"learned order against the fusion alone, {name} per question: {mean:+.4f} ± {se:.4f}")
    return "\n".join(lines)
