"""No message may stall the system through the local extractor (security finding V4).

A red-team found inputs on which the extractor's patterns took time roughly quadratic in the input
(25 s for 20,000 characters). Extraction runs on the event loop the gateway, admin and search share
in the all-in-one process, so every input of the largest accepted size must be read quickly, and
the reading must not hold up the loop.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from openmemory_core.contracts import MAX_TEXT_CHARS
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.extraction.local import RULE_CHARS, rule_part

AT = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
SECONDS = 0.5  # the bound for one extraction of a hostile message of the largest size
NORMAL = "My sister Anna lives in Vienna."


def _filled(unit: str, prefix: str = "") -> str:
    """`prefix`, then `unit` repeated up to the largest text a request may carry."""
    repeats = (MAX_TEXT_CHARS - len(prefix)) // len(unit) + 1
    return (prefix + unit * repeats)[:MAX_TEXT_CHARS]


def _numbered(template: str) -> str:
    """`template` with a running number, repeated up to the largest size: no sentence repeats."""
    parts: list[str] = []
    size = i = 0
    while size < MAX_TEXT_CHARS:
        part = template.format(i=i)
        parts.append(part)
        size += len(part)
        i += 1
    return "".join(parts)[:MAX_TEXT_CHARS]


HOSTILE = {
    # the red-team's inputs
    "drive a Ab Ab": _filled("Ab ", "I drive a "),
    "live in Aa Bb": _filled("Aa Bb ", "I live in "),
    "married to Aa Aa": _filled("Aa ", "I am married to "),
    "I'm I'm": _filled("I'm "),
    "capitalised names": _filled("Anna Berlin Carl Dora "),
    # generated: names, punctuation and joining words that the patterns repeat over
    "one capital word": "A" + "b" * (MAX_TEXT_CHARS - 1),
    "capitals and commas": _filled("Aa, "),
    "capitals and and": _filled("Aa and "),
    "a list with commas": _filled("tea, ", "I like "),
    "a list with and": _filled("tea and ", "I love "),
    "a bare and": _filled("and "),
    "possessives": _filled("Ab's "),
    "apostrophes": _filled("'"),
    "capital apostrophes": _filled("A'"),
    "curly apostrophes": _filled("I’m Ab’s "),
    "hyphens": _filled("A-"),
    "name particles": _filled("Aa de "),
    "titles": _filled("Dr "),
    "kin": _filled("my sister "),
    "named": _filled("named "),
    "works as": _filled("I work as a "),
    "works at a company called": _filled("I work at a "),
    "studies": _filled("I study "),
    "allergic": _filled("I'm allergic to "),
    "plays": _filled("I play "),
    "wide spaces": _filled("Ab" + " " * 40),
    "lines": _filled("Ab\n"),
    "dates": _filled("last week in 3 days on Monday "),
    "unique sentences": _numbered("I live in Paris{i}. "),
    "unique lines": _numbered("- Aa{i} Bb\n"),
    "one sentence of many relations": _numbered("I like tea{i} and "),
    "mixture": _filled("I'm Anna, and I really like Bob's Café and Dr Who, "),
    "mixture of runs": _filled("I'm I'm Aa Bb, and Cc's Dd and "),
}


@pytest.mark.parametrize("infer", [True, False], ids=["infer", "verbatim"])
@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_a_hostile_message_is_read_quickly(text: str, infer: bool) -> None:
    extractor = LocalExtractor()
    started = time.process_time()  # CPU time (the worker thread's too): a busy machine does not count
    await extractor.extract(text, infer, AT)
    elapsed = time.process_time() - started
    assert elapsed <= SECONDS, f"{elapsed:.2f} s of CPU for {len(text)} characters"


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_a_normal_sentence_before_hostile_input_is_still_read(text: str) -> None:
    message = f"{NORMAL}\n{text}"[:MAX_TEXT_CHARS]
    facts = await LocalExtractor().extract(message, True, AT)
    relations = {(r.subject, r.type, r.object) for r in facts[0].relations}
    assert facts[0].text == "User's sister Anna lives in Vienna."
    assert relations == {("User", "HAS_SISTER", "Anna"), ("Anna", "LIVES_IN", "Vienna")}
    (verbatim,) = await LocalExtractor().extract(message, False, AT)
    assert verbatim.text == message.strip()
    assert {"Anna", "Vienna"} <= set(verbatim.entities)


async def test_a_long_ordinary_note_keeps_its_names() -> None:
    sentences = [f"I met Anna{i} in Paris{i} on the trip." for i in range(150)]
    (verbatim,) = await LocalExtractor().extract(" ".join(sentences), False, AT)
    assert {"Anna0", "Paris0", "Anna149", "Paris149"} <= set(verbatim.entities)


async def test_extraction_does_not_hold_up_the_event_loop() -> None:
    """A stall the extractor causes comes back every round; a pause of the whole machine (the suite
    shares two cores) does not. So one round of three with no gap of 0.1 s passes."""
    rounds = []
    for _ in range(3):
        rounds.append(await longest_gap_while_extracting())
        if rounds[-1] < 0.1:
            return
    raise AssertionError(f"the event loop stalled in every round (longest gaps, s): {rounds}")


async def longest_gap_while_extracting() -> float:
    """The longest time the event loop went without running a task, while the hostile texts are
    extracted (both ways)."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)  # the ticker is running before the extraction starts
    try:
        for text in (HOSTILE["drive a Ab Ab"], HOSTILE["mixture"], HOSTILE["I'm I'm"]):
            await LocalExtractor().extract(text, True, AT)
            await LocalExtractor().extract(text, False, AT)
    finally:
        done.set()
        await ticker
    assert gaps
    return max(gaps)


async def test_a_run_on_is_read_for_relations_in_its_first_part_only() -> None:
    """A fact of 20,000 characters (no sentence end) is kept whole; its relations and categories are
    read in its first RULE_CHARS, its names in all of it."""
    filler = "and then some more words " * 400
    head = "I live in Lisbon " + filler
    message = (head[: RULE_CHARS - 200] + " my sister Anna works at Acme " + filler)[:MAX_TEXT_CHARS]
    late = message + " I work at Globex and I love skiing"
    assert len(late) < MAX_TEXT_CHARS
    (fact,) = await LocalExtractor().extract(late, True, AT)
    relations = {(r.subject, r.type, r.object) for r in fact.relations}
    assert ("User", "LIVES_IN", "Lisbon") in relations and ("Anna", "WORKS_AT", "Acme") in relations
    assert not any(r.object == "Globex" for r in fact.relations)  # past the first RULE_CHARS
    assert "Globex" in fact.entities  # names are read throughout
    assert len(rule_part(fact.text)) <= RULE_CHARS and fact.text.startswith(rule_part(fact.text))
