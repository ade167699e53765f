"""The first-person rewrite keeps English correct: the verb agrees, an adverb stays an adverb."""

import pytest

from openmemory_ingest.extraction.rules import first_person_to_user


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("I barely sleep.", "User barely sleeps."),  # was "User barelies sleep."
        ("I rarely drink coffee.", "User rarely drinks coffee."),
        ("I only eat fish.", "User only eats fish."),
        ("I usually live in Lisbon.", "User usually lives in Lisbon."),
        ("I fly to Rome often.", "User flies to Rome often."),  # a verb in -ly is still the verb
        ("I apply for jobs.", "User applies for jobs."),
        ("I no longer play the piano.", "User no longer plays the piano."),  # was "User noes longer …"
        ("I almost never cook.", "User almost never cooks."),
        ("I already own a bike.", "User already owns a bike."),
    ],
)
def test_an_adverb_before_the_verb_stays_an_adverb(sentence: str, expected: str) -> None:
    assert first_person_to_user(sentence) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Tomás and I broke up last week.", "Tomás and User broke up last week."),
        ("so Lena and I split up.", "so Lena and User split up."),
        ("I live in Lisbon and I work at Acme.", "User lives in Lisbon and User works at Acme."),
        ("I just never had time.", "User just never had time."),
        ("I need coffee and I feed the cat.", "User needs coffee and User feeds the cat."),
    ],
)
def test_the_verb_agrees_with_user_or_stays_as_it_was(sentence: str, expected: str) -> None:
    assert first_person_to_user(sentence) == expected
