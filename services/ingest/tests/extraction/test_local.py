from datetime import UTC, date, datetime

import pytest

from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.extraction.local import clauses, split_facts

SENT_AT = datetime(2026, 3, 10, tzinfo=UTC)


def test_split_facts_on_sentences_lines_and_bullets() -> None:
    text = "I love hiking. My sister Anna lives in Vienna!\n- likes green tea\n\n2) works at Acme Corp"
    assert split_facts(text) == [
        "I love hiking.",
        "My sister Anna lives in Vienna!",
        "likes green tea",
        "works at Acme Corp",
    ]


def test_split_facts_drops_empty_and_repeated() -> None:
    assert split_facts("  \n . \nSame thing. Same thing.") == ["Same thing."]


AT = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)  # a Monday


async def test_infer_false_keeps_text_verbatim_with_entities() -> None:
    facts = await LocalExtractor().extract("  I flew to Paris yesterday. Loved it.  ", infer=False, at=AT)
    assert [f.text for f in facts] == ["I flew to Paris yesterday. Loved it."]
    assert facts[0].entities == ["Paris"] and facts[0].refers_to == date(2023, 5, 7)


async def test_infer_rewrites_first_person_and_drops_questions_and_small_talk() -> None:
    facts = await LocalExtractor().extract(
        "Hi! I'm vegetarian. What should I cook? Thanks!", infer=True, at=AT
    )
    assert [f.text for f in facts] == ["User is vegetarian."]
    assert facts[0].categories == ["health"]


async def test_relations_entities_and_dates_of_one_message() -> None:
    text = "My sister Anna moved to Vienna last month. I work at Acme Corp as a nurse."
    first, second = await LocalExtractor().extract(text, infer=True, at=AT)
    assert first.text == "User's sister Anna moved to Vienna in April 2023."
    assert first.refers_to == date(2023, 4, 1)
    assert first.entity_kinds == {"Anna": "person", "Vienna": "place"}
    assert [(r.subject, r.type, r.object) for r in first.relations] == [
        ("User", "HAS_SISTER", "Anna"),
        ("Anna", "LIVES_IN", "Vienna"),
    ]
    assert [(r.type, r.object) for r in second.relations] == [
        ("WORKS_AT", "Acme Corp"),
        ("WORKS_AS", "nurse"),
    ]
    assert second.entity_kinds == {"Acme Corp": "organization"}
    assert "work" in second.categories


@pytest.mark.parametrize(
    "text",
    ["haha thanks, that's all for today", "ok cool", "Thank you so much!", "That helps a lot, thanks!"],
)
async def test_small_talk_and_acknowledgements_are_not_memories(text: str) -> None:
    assert await LocalExtractor().extract(text, True, SENT_AT) == []


async def test_thanks_around_a_fact_keep_the_fact() -> None:
    facts = await LocalExtractor().extract(
        "Thanks! I moved to Porto.", True, datetime(2026, 3, 10, tzinfo=UTC)
    )
    assert [f.text for f in facts] == ["User moved to Porto."]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("I see Dr. Silva on Mondays. She is great.", ["I see Dr. Silva on Mondays.", "She is great."]),
        ("My tutor is Prof. Kim.", ["My tutor is Prof. Kim."]),
        ("I live in St. Louis now.", ["I live in St. Louis now."]),
        ("I like fruit, e.g. Apples.", ["I like fruit, e.g. Apples."]),
        ("I met J. Smith. He is nice.", ["I met J. Smith.", "He is nice."]),
        ("No. I live in Lisbon.", ["No.", "I live in Lisbon."]),
    ],
)
def test_an_abbreviation_does_not_end_a_sentence(text: str, sentences: list[str]) -> None:
    assert split_facts(text) == sentences


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("I live in Lisbon and work at Acme.", ["I live in Lisbon.", "I work at Acme."]),
        ("I'm a nurse and live in Braga.", ["I'm a nurse.", "I live in Braga."]),
        ("I like tea and coffee.", ["I like tea and coffee."]),  # a list stays whole
        ("I work at Procter and Gamble.", ["I work at Procter and Gamble."]),  # so does a name
    ],
)
def test_each_clause_of_the_user_is_its_own_fact(sentence: str, expected: list[str]) -> None:
    assert clauses(sentence) == expected


async def test_he_and_she_become_the_one_person_the_message_named() -> None:
    text = "My brother Tom lives in Paris. He works at a startup called Zeta."
    facts = await LocalExtractor().extract(text, True, SENT_AT)
    assert facts[1].text == "Tom works at a startup called Zeta."
    assert [(r.subject, r.type, r.object) for r in facts[1].relations] == [("Tom", "WORKS_AT", "Zeta")]


async def test_a_pronoun_stays_when_it_could_be_several_people_and_makes_no_relation() -> None:
    text = "My sister Anna and my brother Tom visited. She loves jazz."
    facts = await LocalExtractor().extract(text, True, SENT_AT)
    assert facts[1].text == "She loves jazz." and facts[1].relations == []


async def test_we_is_the_user_and_the_person_named_and_our_is_the_users() -> None:
    text = "My wife Hannah and I moved. We live in Porto now. Our dog is called Rex."
    facts = await LocalExtractor().extract(text, True, SENT_AT)
    assert [f.text for f in facts[1:]] == ["User and Hannah live in Porto now.", "User's dog is called Rex."]


def test_a_lower_case_fragment_of_chat_stays_with_its_neighbour() -> None:
    assert split_facts("got promoted!!! officially a senior analyst now. thanks!") == [
        "got promoted!!! officially a senior analyst now.",
        "thanks!",  # small talk stays apart, to be dropped
    ]
    assert split_facts("random but I quit coffee. my sleep is better") == [
        "random but I quit coffee.",
        "my sleep is better",
    ]  # a sentence in lower case is a sentence
