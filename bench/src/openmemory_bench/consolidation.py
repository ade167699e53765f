"""`openmemory bench consolidate`: consolidation on a synthetic history of 5,000 memories of one user.

The history is generated deterministically (seeded): distinct facts from a dozen templates, with
near-duplicates injected (a paraphrase of a fact, known as such), near misses (the same template
with one slot changed: another city, another number, another name, so not the same fact), plans
for dates in 2025 (passed) and 2030 (ahead), and temporary memories (an `expires_at` passed or
ahead, and `temporary: true` added long ago). It starts `openmemory run` (every component, embedded
stores) in a temporary data dir, imports the history through the bus (`ImportCommand`s, which
ingest applies), asks for a consolidation on `om.consolidate` as `openmemory consolidate` does, and
reports memories before and after, merges against the injected duplicates (precision, recall), the
plans search notes as past, the expired memories archived and the time taken.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.runtime import read_endpoints
from openmemory_testing.harness import start_system

USER = "bench-consolidation"
NAMES = (
    "Ana Tomas Lucia Marco Ines Pavel Yuki Omar Greta Hugo Nadia Felix Rosa Ivan Clara Diego "
    "Elena Jonas Lina Mateo Sara Bruno Alma Kofi Leila Otto Maya Rui Vera Emil"
).split()
CITIES = (
    "Porto Lisbon Madrid Berlin Vienna Prague Oslo Dublin Lyon Turin Krakow Ghent Seville "
    "Bergen Zurich Riga Tallinn Bologna Leeds Nantes Graz Bilbao Malmo Aarhus Split"
).split()
JOBS = (
    "nurse teacher architect plumber lawyer chef pilot dentist translator carpenter pharmacist "
    "journalist librarian electrician baker"
).split()
BOOKS = (
    "Dune Emma Beloved Ulysses Middlemarch Rebecca Persuasion Solaris Kindred Ivanhoe Dracula "
    "Frankenstein Walden Candide Siddhartha Lolita Hamlet"
).split()
MONTHS = "January February March April May June July August September October November December".split()
RELATIVES = "sister brother cousin aunt uncle niece nephew grandmother".split()
ITEMS = "jacket lamp backpack kettle scarf bicycle umbrella teapot rug chair".split()
COLOURS = "red green blue yellow black white orange grey".split()
SHOPS = "Ikea Zara Decathlon Muji Uniqlo Primark Lidl Fnac".split()
PLACES = "Sintra Gredos Picos Dolomites Tatras Pyrenees Alps Jura Eifel Harz".split()
CLASSES = "pottery salsa yoga boxing painting piano climbing swimming".split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
LANGUAGES = "Japanese Polish Greek Turkish Korean Dutch Swahili Hindi Finnish".split()
DISHES = "paella lasagne moussaka ramen risotto curry goulash tagine pierogi".split()
MUSEUMS = "modern art,science,history,design,railway,maritime,natural history".split(",")

#: (fact, a paraphrase of it): the same slots fill both.
TEMPLATES = [
    (
        "User's friend {name} works as a {job} in {city}.",
        "User's friend {name} is working as a {job} in {city}.",
    ),
    ("User read {book} in {month} {year}.", "In {month} {year}, User read {book}."),
    ("User's {relative} {name} lives in {city}.", "User's {relative} {name} is living in {city}."),
    (
        "User went hiking in {place} with {name} on {day} {month} {year}.",
        "On {day} {month} {year}, User went hiking in {place} with {name}.",
    ),
    (
        "User bought a {colour} {item} at {shop} in {month} {year}.",
        "In {month} {year}, User bought a {colour} {item} at {shop}.",
    ),
    (
        "User takes {klass} classes with {name} on {weekday}s.",
        "On {weekday}s User takes {klass} classes with {name}.",
    ),
    (
        "User cooked {dish} for {name}'s birthday in {year}.",
        "For {name}'s birthday in {year}, User cooked {dish}.",
    ),
    (
        "User started learning {language} with a tutor called {name}.",
        "User started learning {language} with a tutor named {name}.",
    ),
    (
        "User visited the {museum} museum in {city} with {name}.",
        "With {name}, User visited the {museum} museum in {city}.",
    ),
    (
        "User lent {name} {n} books last time they met in {city}.",
        "Last time they met in {city}, User lent {name} {n} books.",
    ),
]
#: The slot a near miss changes, per template: then it is another fact.
NEAR_MISS_SLOT = ["city", "year", "city", "day", "colour", "weekday", "dish", "language", "city", "n"]


@dataclass
class History:
    memories: list[c.ImportedMemory] = field(default_factory=list)
    duplicate_of: dict[str, str] = field(default_factory=dict)  # injected paraphrase -> its original
    near_misses: set[str] = field(default_factory=set)
    past_plans: set[str] = field(default_factory=set)
    future_plans: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    not_expired: set[str] = field(default_factory=set)


def _slots(rng: random.Random) -> dict[str, Any]:
    return {
        "name": rng.choice(NAMES),
        "city": rng.choice(CITIES),
        "job": rng.choice(JOBS),
        "book": rng.choice(BOOKS),
        "month": rng.choice(MONTHS),
        "year": rng.choice(range(2012, 2024)),
        "relative": rng.choice(RELATIVES),
        "place": rng.choice(PLACES),
        "day": rng.randint(1, 28),
        "colour": rng.choice(COLOURS),
        "item": rng.choice(ITEMS),
        "shop": rng.choice(SHOPS),
        "klass": rng.choice(CLASSES),
        "weekday": rng.choice(WEEKDAYS),
        "language": rng.choice(LANGUAGES),
        "dish": rng.choice(DISHES),
        "museum": rng.choice(MUSEUMS),
        "n": rng.randint(2, 9),
    }


def _changed(rng: random.Random, slots: dict[str, Any], slot: str) -> dict[str, Any]:
    while True:
        other = _slots(rng)[slot]
        if other != slots[slot]:
            return {**slots, slot: other}


def generate(total: int = 5000, seed: int = 18) -> History:
    """A deterministic history of `total` memories: 6% injected paraphrases, 4% near misses, 4% plans
    passed and 4% ahead, 3% temporary memories expired and 3% not yet."""
    duplicates, near_misses, plans, temporary = (
        total * 6 // 100,
        total * 4 // 100,
        total * 4 // 100,
        total * 3 // 100,
    )
    rng = random.Random(seed)
    history = History()
    start = datetime(2024, 1, 1, 9, tzinfo=UTC)
    texts: set[str] = set()
    ids = (str(uuid.uuid5(uuid.NAMESPACE_URL, f"openmemory-bench:{seed}:{i}")) for i in range(10**9))

    def add(text: str, at: datetime, **metadata: Any) -> str:
        memory_id = next(ids)
        texts.add(text)
        history.memories.append(
            c.ImportedMemory(id=memory_id, text=text, app="bench", created_at=at, metadata=metadata)
        )
        return memory_id

    def moment() -> datetime:  # anywhere in 2024, when the history was told
        return start + timedelta(minutes=rng.randrange(0, 365 * 24 * 60))

    facts: list[tuple[int, dict[str, Any], str]] = []  # template, slots, id
    base = total - duplicates - near_misses - 2 * plans - 2 * temporary
    while len(facts) < base:
        template, slots = rng.randrange(len(TEMPLATES)), _slots(rng)
        text = TEMPLATES[template][0].format(**slots)
        if text not in texts:
            facts.append((template, slots, add(text, moment())))
    for template, slots, original in rng.sample(facts, duplicates):
        text = TEMPLATES[template][1].format(**slots)
        if text not in texts:
            history.duplicate_of[add(text, moment())] = original
    made = 0
    while made < near_misses:
        template, slots, _ = rng.choice(facts)
        text = TEMPLATES[template][0].format(**_changed(rng, slots, NEAR_MISS_SLOT[template]))
        if text not in texts:
            history.near_misses.add(add(text, moment()))
            made += 1
    for _ in range(plans):
        city, day, month = rng.choice(CITIES), rng.randint(1, 28), rng.randrange(12)
        past = f"User is planning a trip to {city} with {rng.choice(NAMES)} on {day} {MONTHS[month]} 2025."
        told = datetime(2025, month + 1, day, 9, tzinfo=UTC) - timedelta(days=rng.randint(10, 60))
        if past not in texts:
            history.past_plans.add(add(past, told))
        ahead = (
            f"User is going to fly to {city} on {day} {MONTHS[month]} 2030 for {rng.choice(NAMES)}'s wedding."
        )
        if ahead not in texts:
            history.future_plans.add(add(ahead, moment()))
    for i in range(temporary):
        code = rng.randint(1000, 9999)
        if i % 3 == 0:  # flagged temporary, added long ago
            history.expired.add(
                add(f"User's parking spot this week is number {code}.", moment(), temporary=True)
            )
        else:
            history.expired.add(
                add(
                    f"The gate code at the holiday flat is {code}.",
                    moment(),
                    expires_at="2025-06-01T00:00:00+00:00",
                )
            )
        history.not_expired.add(
            add(
                f"The locker code at the new gym is {code}.", moment(), expires_at="2035-01-01T00:00:00+00:00"
            )
        )
    rng.shuffle(history.memories)
    return history


async def _import(bus: Bus, history: History) -> None:
    for start in range(0, len(history.memories), c.MAX_IMPORT_BATCH):
        batch = history.memories[start : start + c.MAX_IMPORT_BATCH]
        done = await bus.submit(c.ImportCommand(user_id=USER, app="bench", memories=batch), wait=300)
        assert done is not None and done.ok, done


async def _active(bus: Bus) -> int:
    stats = await bus.query(c.Query.STATS, c.StatsRequest(user_id=USER), c.StatsResponse, 120)
    return stats.by_state.get("active", 0)


async def _search_notes(
    bus: Bus, history: History, texts: dict[str, str], sample: int = 40
) -> dict[str, int]:
    """Search for a sample of past and future plans by their words; count those whose hit has a note."""
    rng = random.Random(5)
    counts = {"past_noted": 0, "past_asked": 0, "future_noted": 0, "future_asked": 0}
    for kind, ids in (("past", history.past_plans), ("future", history.future_plans)):
        for memory_id in rng.sample(sorted(ids), min(sample, len(ids))):
            request = c.SearchRequest(user_id=USER, query=texts[memory_id], limit=5)
            found = await bus.query(c.Query.SEARCH, request, c.SearchResponse, 60)
            hit = next((h for h in found.hits if h.memory.id == memory_id), None)
            if hit is None:
                continue
            counts[f"{kind}_asked"] += 1
            counts[f"{kind}_noted"] += hit.note is not None
    return counts


async def run(total: int = 5000, root: Path | None = None) -> dict[str, Any]:
    history = generate(total)
    texts = {m.id or "": m.text for m in history.memories}
    with tempfile.TemporaryDirectory(prefix="om-bench-consolidate-") as tmp:
        data_dir = (root or Path(tmp)) / "data"
        env = {"OPENMEMORY_INGEST_CONSOLIDATE_INTERVAL_HOURS": "0", "OPENMEMORY_LOG_LEVEL": "WARNING"}
        system = await asyncio.to_thread(start_system, data_dir, "all", env, timeout=180)
        try:
            endpoints = read_endpoints(data_dir)
            assert endpoints is not None, "the system wrote no endpoints"
            bus = await Bus.connect(endpoints["nats_url"], "bench", c.DEFAULT_PARTITIONS)
            try:
                started = time.perf_counter()
                await _import(bus, history)
                imported = time.perf_counter() - started
                before = await _active(bus)
                started = time.perf_counter()
                request = c.ConsolidateRequest(user_id=USER, dry_run=False, wait=1800)
                msg = await bus.nc.request(
                    c.CONSOLIDATE_SUBJECT, request.model_dump_json().encode(), timeout=1900
                )
                took = time.perf_counter() - started
                reply = c.Reply.model_validate_json(msg.data)
                assert reply.ok, reply.error
                report = c.ConsolidationReport.model_validate(reply.result)
                after = await _active(bus)
                notes = await _search_notes(bus, history, texts)
            finally:
                await bus.close()
        finally:
            await asyncio.to_thread(system.stop)
    folded = {m: merge.keep for merge in report.merges for m in merge.merged}
    groups = {
        **{d: o for d, o in history.duplicate_of.items()},
        **{o: o for o in history.duplicate_of.values()},
    }
    right = sum(
        1 for m, keep in folded.items() if m in groups and keep in groups and groups[m] == groups[keep]
    )
    found_pairs = sum(1 for d, o in history.duplicate_of.items() if folded.get(d) == o or folded.get(o) == d)
    archived = {s.id for s in report.applied if s.state is c.MemoryState.ARCHIVED}
    past_reported = {p.memory_id for p in report.past_plans}
    return {
        "memories": len(history.memories),
        "imported_seconds": round(imported, 1),
        "active_before": before,
        "active_after": after,
        "injected_duplicates": len(history.duplicate_of),
        "merged": len(folded),
        "merged_correctly": right,
        "precision": right / len(folded) if folded else None,
        "recall": found_pairs / len(history.duplicate_of) if history.duplicate_of else None,
        "near_misses_merged": sum(1 for m in folded if m in history.near_misses)
        + sum(1 for keep in folded.values() if keep in history.near_misses),
        "expired_injected": len(history.expired),
        "expired_archived": len(archived & history.expired),
        "not_expired_archived": len(archived & history.not_expired),
        "past_plans_injected": len(history.past_plans),
        "past_plans_found": report.past_plan_count,
        "past_plans_found_listed_correct": len(past_reported & history.past_plans),
        "future_plans_found_as_past": len(past_reported & history.future_plans),
        "search_notes": notes,
        "consolidation_seconds": round(took, 1),
        "planned_seconds": report.seconds,
        "changes": len(report.applied),
    }


def markdown(r: dict[str, Any]) -> str:
    notes = r["search_notes"]
    return "\n".join(
        [
            f"Consolidation of {r['memories']} memories of one user (imported in {r['imported_seconds']} s)",
            "",
            "| figure | value |",
            "|---|---|",
            f"| active memories before / after | {r['active_before']} / {r['active_after']} |",
            f"| merges: memories folded / correct / injected duplicates | {r['merged']} / "
            f"{r['merged_correctly']} / {r['injected_duplicates']} |",
            f"| precision / recall of merges | {r['precision']:.3f} / {r['recall']:.3f} |",
            f"| near misses merged (another city, number, name) | {r['near_misses_merged']} |",
            f"| temporary memories archived / expired injected (not yet expired archived) | "
            f"{r['expired_archived']} / {r['expired_injected']} ({r['not_expired_archived']}) |",
            f"| past plans found / injected (future plans taken as past) | {r['past_plans_found']} / "
            f"{r['past_plans_injected']} ({r['future_plans_found_as_past']}) |",
            f"| search: past plans with a note / future plans with a note | "
            f"{notes['past_noted']}/{notes['past_asked']} / "
            f"{notes['future_noted']}/{notes['future_asked']} |",
            f"| consolidation time (plan + apply, {r['changes']} UPDATE events) | "
            f"{r['consolidation_seconds']} s |",
        ]
    )
