"""Change detection without a model: which stored memory a new fact replaces (`extraction.changes`).
The sentences are written for these tests; the development and evaluation sets are in bench/data."""

from __future__ import annotations

import pytest

from openmemory_ingest.extraction.changes import Candidate, read_change, replaced

STORED = [
    Candidate("editor", "User writes all User's code in VS Code.", 0.35),
    Candidate("coffee", "User drinks three coffees a day.", 0.30),
    Candidate("band", "User plays guitar in a pub band.", 0.25),
    Candidate("city", "User lives in Valencia.", 0.20),
]


@pytest.mark.parametrize(
    ("fact", "old"),
    [
        ("User switched from VS Code to Zed last week.", ["VS Code"]),
        ("User quit Globex in May.", ["Globex"]),
        ("User used to play guitar but now it's drums.", ["guitar"]),
        ("User doesn't drink coffee any more.", ["coffee"]),
        ("User is no longer vegetarian.", ["vegetarian"]),
        ("scrap the Japan trip, we're doing Iceland instead.", ["Japan trip"]),
        ("User cancelled User's gym membership.", ["gym membership"]),
    ],
)
def test_a_fact_that_names_what_it_replaces_is_read(fact: str, old: list[str]) -> None:
    change = read_change(fact)
    assert change.old == old
    assert change.cue


@pytest.mark.parametrize(
    ("fact", "target"),
    [
        ("User moved over from VS Code to Zed.", "editor"),  # names the old value
        ("User doesn't drink coffee any more.", "coffee"),  # a stop, no replacement
        ("User used to play guitar but now it's drums.", "band"),
        ("These days User mostly codes in Rust.", "editor"),  # a cue only: the closest memory
    ],
)
def test_the_replaced_memory_is_the_one_the_fact_speaks_of(fact: str, target: str) -> None:
    assert replaced(fact, STORED, 0.3) == target


def test_a_cue_alone_needs_a_close_memory() -> None:
    assert replaced("These days User mostly codes in Rust.", STORED, 0.5) is None


def test_a_fact_that_adds_replaces_nothing() -> None:
    assert replaced("User now also plays bass in a second band.", STORED, 0.0) is None
    assert replaced("User enjoys long walks on the beach.", STORED, 0.0) is None  # no cue at all


def test_a_cue_elsewhere_in_the_message_counts() -> None:
    fact = "Writing this from User's flat in Bilbao."
    assert replaced(fact, STORED, 0.2) is None
    # ... with its own threshold, stricter than a fact's own cue (`MESSAGE_CUE_SIMILARITY`)
    assert replaced(fact, STORED, 0.2, message_cued=True, message_threshold=0.3) == "editor"  # the closest
    assert replaced(fact, STORED, 0.2, message_cued=True, message_threshold=0.4) is None
    assert replaced(fact, [STORED[3]], 0.2, message_cued=True, message_threshold=0.2) == "city"


def test_one_value_per_attribute() -> None:
    stored = [Candidate("fav", "User's favourite editor is VS Code.", 0.1)]
    assert replaced("User's favourite editor is Zed.", stored, 0.9) == "fav"
    assert replaced("User's favourite editor is VS Code.", stored, 0.9) is None  # the same value
    assert replaced("User's favourite band is Blur.", stored, 0.9) is None  # another attribute


def test_a_vague_object_names_nothing() -> None:
    assert read_change("User cancelled that one.").old == []
    assert read_change("User is still getting used to driving it.").old == []


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("User need coffee.", ["need"]),
        ("User nevers had time.", ["nevers"]),
        ("Tomás and User brokes up.", []),  # a plural subject: not this check's to judge
        ("User brokes up with Sam.", ["brokes"]),
        ("User barelies sleeps.", ["barelies"]),
        ("User really loves tea and User's sister lives in Paris.", []),
    ],
)
def test_the_agreement_check_finds_garbled_verbs(text: str, errors: list[str]) -> None:
    from openmemory_ingest.extraction.evaluation import agreement_errors

    assert agreement_errors(text) == errors
