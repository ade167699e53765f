"""`openmemory bench scale`: search latency as one user's memories grow (10k, 100k, …).

The memories are synthetic but shaped like real ones (first-person facts about people, places,
food, work, hobbies and dates, from word lists with a fixed seed). They are embedded with the real
model and written straight to the vector store in batches (building 100k through ingest one command
at a time would take most of the run); the queries then go through the search service over NATS, as
a client's would. Reports p50/p95 per size.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openmemory_bench.retrieval import p95
from openmemory_bench.runner import stack
from openmemory_core import contracts as c
from openmemory_core.stores.vectors import VectorRecord
from openmemory_core.text.keywords import document_vector

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


async def run(sizes: list[int], questions: int = 200, engine: str = "edge") -> dict[str, Any]:
    results: dict[str, Any] = {"engine": engine, "sizes": {}}
    corpus = synthetic(max(sizes))
    with tempfile.TemporaryDirectory(prefix="openmemory-scale-") as tmp:
        async with stack(Path(tmp), engine) as s:
            user, stored = "scale-user", 0
            now = datetime.now(UTC)
            for size in sorted(sizes):
                started = time.perf_counter()
                for begin in range(stored, size, 512):
                    batch = corpus[begin : min(size, begin + 512)]
                    dense = await s.embedder.embed([text for text, _ in batch])
                    records = [
                        VectorRecord(
                            c.Memory(
                                id=str(uuid.uuid4()),
                                user_id=user,
                                app="scale",
                                text=text,
                                created_at=now,
                                updated_at=now,
                                occurred_at=when,
                                content_hash=c.content_hash(user, text),
                                request_id="scale",
                            ),
                            vector,
                            document_vector(f"{text} {when.day} {when:%B %Y}"),
                        )
                        for (text, when), vector in zip(batch, dense, strict=True)
                    ]
                    await s.vectors.upsert(records)
                build = time.perf_counter() - started
                stored = size
                latencies = []
                for question in queries(questions):
                    t0 = time.perf_counter()
                    await s.client.query(
                        c.Query.SEARCH,
                        c.SearchRequest(user_id=user, query=question, limit=10),
                        c.SearchResponse,
                        30,
                    )
                    latencies.append(1000 * (time.perf_counter() - t0))
                results["sizes"][str(size)] = {
                    "search_p50_ms": round(statistics.median(latencies), 2),
                    "search_p95_ms": round(p95(latencies) or 0.0, 2),
                    "queries": len(latencies),
                    "build_s": round(build, 1),
                }
                print(f"{size:>7} memories: search p50 {results['sizes'][str(size)]['search_p50_ms']} ms, "
                      f"p95 {results['sizes'][str(size)]['search_p95_ms']} ms", flush=True)  # fmt: skip
    return results
