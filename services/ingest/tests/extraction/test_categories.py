"""Categories are chosen on whole words (with their inflections), never on a word inside another."""

import pytest

from openmemory_ingest.extraction.categories import categorize


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("User spent the summer in Spain.", "health"),  # "pain"
        ("User took up painting.", "health"),
        ("User will still call later.", "health"),  # "ill"
        ("User's parent is a pilot.", "finance"),  # "rent"
        ("User tried a different route.", "finance"),
        ("User met Jason.", "relationships"),  # "son" inside a name
    ],
)
def test_a_word_inside_another_is_not_a_category(text: str, wrong: str) -> None:
    assert wrong not in categorize(text)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("User has chronic back pain.", "health"),
        ("User pays rent of 900 euros.", "finance"),
        ("User is allergic to peanuts.", "health"),  # a stem: allergic, allergy
        ("User studies law.", "education"),  # study -> studies
        ("User liked the concert.", "preferences"),  # like -> liked
        ("User was shopping for shoes.", "shopping"),  # shop -> shopping
        ("User's grandmother lives in Rome.", "relationships"),
        ("User can't stand cilantro.", "preferences"),
        ("User plays the piano.", "entertainment"),
    ],
)
def test_a_word_in_any_of_its_forms_is_its_category(text: str, category: str) -> None:
    assert category in categorize(text)
