"""The local extractor held to minimum scores on the hand-made table and on the held-out set.

The figures themselves are reported by bench/extraction.py; these floors catch regressions.
"""

from pathlib import Path

import pytest

from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.extraction.evaluation import score_table

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
