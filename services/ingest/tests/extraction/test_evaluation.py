"""The local extractor held to minimum scores on the hand-made table and on the held-out set.

The figures themselves are reported by bench/extraction.py; these floors catch regressions.
"""

import json
from pathlib import Path

import pytest

from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.extraction.evaluation import score_meaning, score_table

DATA = Path(__file__).resolve().parents[4] / "bench" / "data"


async def test_the_table_is_large_and_scored_well() -> None:
    score = await score_table(LocalExtractor(), DATA / "extraction_cases.json")
    assert score.cases >= 60
    assert score.facts.f1 >= 0.9 and score.entities.f1 >= 0.9
    assert score.relations.precision >= 0.95 and score.relations.recall >= 0.95
    assert score.date_accuracy >= 0.9


async def test_the_held_out_set_stays_where_it_was_measured() -> None:
    score = await score_table(LocalExtractor(), DATA / "extraction_heldout.json")
    assert score.relations.precision >= 0.95, score.misses
    assert score.relations.recall >= 0.75, score.misses
    assert score.entities.f1 >= 0.9 and score.date_accuracy >= 0.85


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("I'm vegetarian", "User is vegetarian"),
        ("i really like my job", "User really likes User's job"),
        ("I go to the gym and I watch films", "User goes to the gym and User watches films"),
        ("I study hard", "User studies hard"),
        ("I can't swim", "User can't swim"),
        ("Tell me about myself", "Tell User about User"),
    ],
)
def test_first_person_becomes_the_user(sentence: str, expected: str) -> None:
    from openmemory_ingest.extraction.rules import first_person_to_user

    assert first_person_to_user(sentence) == expected


async def test_the_meaning_score_counts_what_the_extractor_says(tmp_path: Path) -> None:
    """The scorer itself, on three cases whose outcome is known: a triple found, one missed, small
    talk, a date, and a triple the set forbids."""
    table = {
        "message_time": "2026-03-10T09:00:00+00:00",
        "cases": [
            {"text": "I live in Lisbon.", "facts": [{"key_words": ["lives", "Lisbon"]}],
             "triples": [["User", "LIVES_IN", "Lisbon"]], "date": None, "categories": ["personal"],
             "must_not_triples": [["User", "LIVES_IN", "Lisbon"]]},
            {"text": "I moved to Porto yesterday.", "facts": [{"key_words": ["Porto"]}],
             "triples": [["User", "LIVES_IN", "Porto"], ["User", "FROM", "Nowhere"]], "date": "2026-03-09"},
            {"text": "thanks!", "facts": [], "triples": [], "date": None, "small_talk": True},
        ],
    }  # fmt: skip
    path = tmp_path / "meaning.json"
    path.write_text(json.dumps(table))
    score = await score_meaning(LocalExtractor(), path)
    assert (score.triples.true_positives, score.triples.expected) == (2, 3)
    assert score.forbidden_triples == 1
    assert (score.facts.true_positives, score.facts.expected) == (2, 2)
    assert score.small_talk_right == score.small_talk_total == 1
    assert (score.dates_right, score.dates_total) == (1, 1)
    assert [m["id"] for m in score.misses] == [None]  # only the second case differs
