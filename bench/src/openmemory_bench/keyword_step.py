"""`openmemory bench keyword-step`: a search's keyword step on Qdrant Edge, with and without a write
since the last search.

The step weighs the question's terms by the user's own IDF, which needs two counts per term: the
user's memories holding it and everyone's. Counting a common term scans the points that hold it, so
`EdgeVectorStore` keeps the counts until the shard's next write. This builds a store of the scale
bench's memories and owners (`scale.synthetic`, `scale.owners`; keyword vectors and a small dense
vector, no model) and asks the scale bench's questions twice: once with a write just before each
(every count is made again, as before the counts were kept), and once with none between. It times
`keyword_search` (the keyword list alone, with its payloads); search itself takes this list and the
dense one in one call (`dense_and_keyword`), whose counting is the same.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from openmemory_bench.scale import asker, owners, queries, summary, synthetic, user_name
from openmemory_core import contracts as c
from openmemory_core.stores.edge import EdgeVectorStore
from openmemory_core.stores.vectors import VectorRecord, keyword_vector
from openmemory_core.text.keywords import query_vector

DIMENSION = 8
CANDIDATES = 50  # the search service's default
BATCH = 500


def _record(index: int, text: str, when: Any, owner: int, rng: random.Random) -> VectorRecord:
    memory = c.Memory(
        id=str(uuid.UUID(int=rng.getrandbits(128))), user_id=user_name(owner), app="bench",
        text=text, created_at=when, updated_at=when, occurred_at=when,
        content_hash=c.content_hash(user_name(owner), f"{index} {text}"), request_id=f"keyword-{index}",
    )  # fmt: skip
    return VectorRecord(memory, [rng.random() for _ in range(DIMENSION)], keyword_vector(memory))


async def _measure(
    store: EdgeVectorStore, asked: list[tuple[str, str]], write: VectorRecord | None
) -> tuple[list[float], int]:
    """Each question's time in ms, and how many found a memory."""
    times, found = [], 0
    for user, question in asked:
        if write is not None:
            await store.upsert([write])  # the same record again: a write that changes no count
        started = time.perf_counter()
        hits = await store.keyword_search(user, query_vector(question), CANDIDATES)
        times.append(1000 * (time.perf_counter() - started))
        found += bool(hits)
    return times, found


async def run(sizes: list[int], questions: int = 300) -> dict[str, Any]:
    if not sizes or min(sizes) < 1 or questions < 1:
        raise ValueError("keyword-step needs a size of one memory and one question at least")
    report: dict[str, Any] = {"questions": questions, "sizes": []}
    asked = [(user_name(asker(i)), q) for i, q in enumerate(queries(questions))]
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="om-keyword-step-") as folder:
            store = EdgeVectorStore(Path(folder), "keyword-step", DIMENSION)
            await store.ensure_collection()
            rng = random.Random(3)
            records = [
                _record(i, text, when, owner, rng)
                for i, ((text, when), owner) in enumerate(zip(synthetic(size), owners(size), strict=True))
            ]
            for start in range(0, size, BATCH):
                await store.upsert(records[start : start + BATCH])
            row: dict[str, Any] = {"memories": size}
            await _measure(store, asked[:20], None)  # warm-up
            # In turns, so that the machine's drift falls on both.
            runs: dict[str, list[float]] = {"after a write": [], "no write between": []}
            found = 0
            for _ in range(2):
                for name, write in (("after a write", records[0]), ("no write between", None)):
                    times, answered = await _measure(store, asked, write)
                    runs[name] += times
                    found += answered
            row |= {name: summary(times) for name, times in runs.items()}
            row["questions_with_hits"] = round(found / (4 * len(asked)), 3)
            await store.close()
        report["sizes"].append(row)
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"A search's keyword step on Qdrant Edge (the user's IDF and the query), {report['questions']} "
        "questions of the scale bench, each asked twice each way, in ms:",
        "",
        "| memories | after a write (counts made again) p50 / p95 | no write between (counts kept) p50 / p95 "
        "| questions with a hit |",
        "|---|---|---|---|",
    ]
    for row in report["sizes"]:
        a, b = row["after a write"], row["no write between"]
        lines.append(
            f"| {row['memories']:,} | {a['p50_ms']:.2f} / {a['p95_ms']:.2f} "
            f"| {b['p50_ms']:.2f} / {b['p95_ms']:.2f} | {row['questions_with_hits']:.0%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown(asyncio.run(run([10_000]))))
