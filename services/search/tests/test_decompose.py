"""Splitting a question that needs several memories into parts (`decompose.decompose`)."""

import pytest

from openmemory_search.decompose import MAX_PARTS, decompose


def test_two_names_joined_by_and_give_one_part_each() -> None:
    assert decompose("What movies have both Joanna and Nate seen?") == [
        "What movies have Joanna seen?",
        "What movies have Nate seen?",
    ]
    assert decompose("What do Melanie and Caroline have in common?") == [
        "What do Melanie have in common?",
        "What do Caroline have in common?",
    ]


def test_a_list_of_names_gives_at_most_the_cap() -> None:
    parts = decompose("What did Anna, Ben, Carla and Dan cook for the party?")
    assert len(parts) == MAX_PARTS
    assert parts[0] == "What did Anna cook for the party?" and "Ben" in parts[1]


def test_a_second_question_after_and_is_its_own_part() -> None:
    parts = decompose("What schools did John play in and how many years was he with his team?")
    assert parts == ["What schools did John play in", "John how many years was he with his team"]


def test_a_condition_is_a_part_with_the_question_s_names() -> None:
    parts = decompose("What underlying condition might Joanna have based on her allergies?")
    assert parts == ["What underlying condition might Joanna have", "Joanna her allergies"]


@pytest.mark.parametrize(
    "question",
    [
        "What items does John collect?",  # one name, one clause
        "What is something Nate gave to Joanna?",  # two names, not joined
        "How has John's fitness improved since starting boot camps?",  # "since" is a time, not a reason
        "Who is Anthony and?",  # nothing after the joiner
        "",
    ],
)
def test_a_question_of_one_part_is_not_split(question: str) -> None:
    assert decompose(question) == []
