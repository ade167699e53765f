"""Relations the graph needs about the user: their own job and employer however they say it, pets
named in a list, and a language being learned kept apart from one spoken."""

from datetime import UTC, datetime

import pytest

from openmemory_ingest.extraction import LocalExtractor


async def triples(text: str) -> set[tuple[str, str, str]]:
    facts = await LocalExtractor().extract(text, True, datetime(2026, 3, 10, tzinfo=UTC))
    return {(r.subject, r.type, r.object) for f in facts for r in f.relations}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm a backend engineer at Stripe.",
         {("User", "WORKS_AS", "backend engineer"), ("User", "WORKS_AT", "Stripe")}),
        ("I joined Google as a product manager.",
         {("User", "WORKS_AT", "Google"), ("User", "WORKS_AS", "product manager")}),
        ("I'm a senior data scientist for Acme Corp.",
         {("User", "WORKS_AS", "senior data scientist"), ("User", "WORKS_AT", "Acme Corp")}),
        ("I have two dogs, Rex and Bella.", {("User", "HAS_PET", "Rex"), ("User", "HAS_PET", "Bella")}),
        ("I'm learning Japanese.", {("User", "LEARNING", "Japanese")}),
        ("I speak French and German.", {("User", "SPEAKS", "French"), ("User", "SPEAKS", "German")}),
        ("I'm a regular at Joe's.", set()),  # not a job
        ("I went vegan last month.", {("User", "DIET", "vegan")}),
        ("Vegan food is great.", set()),  # about food, not the user's diet
        ("My parents, Rui and Helena, live in Braga.",
         {("User", "HAS_PARENT", "Rui"), ("User", "HAS_PARENT", "Helena"),
          ("Rui", "LIVES_IN", "Braga"), ("Helena", "LIVES_IN", "Braga")}),
        ("My kids Ana and Leo go to school.", {("User", "HAS_CHILD", "Ana"), ("User", "HAS_CHILD", "Leo")}),
    ],
)  # fmt: skip
async def test_the_users_own_facts_become_relations(text: str, expected: set[tuple[str, str, str]]) -> None:
    assert await triples(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # no "I": the user is the subject all the same
        ("allergic to penicillin, found that out the hard way", {("User", "ALLERGIC_TO", "penicillin")}),
        ("product manager at Figma, working remotely from Lyon",
         {("User", "WORKS_AS", "product manager"), ("User", "WORKS_AT", "Figma"),
          ("User", "LIVES_IN", "Lyon")}),
        ("planning a trip to Chile in June", {("User", "PLANS", "trip to Chile")}),
        # two subjects of one verb, and "we"
        ("my partner Sam and I live in Leeds", {("User", "HAS_PARTNER", "Sam"), ("Sam", "LIVES_IN", "Leeds"),
                                                ("User", "LIVES_IN", "Leeds")}),
        ("we have two cats, Miso and Tofu.", {("User", "HAS_PET", "Miso"), ("User", "HAS_PET", "Tofu")}),
        # tools, plans, and lists with clean objects
        ("I've been using Obsidian and Todoist for a year",
         {("User", "USES", "Obsidian"), ("User", "USES", "Todoist")}),
        ("switched from Chrome to Firefox last year", {("User", "USES", "Firefox")}),
        ("I'm hoping to buy a house", {("User", "PLANS", "buying a house")}),
        ("I speak English, Arabic and a little Turkish",
         {("User", "SPEAKS", "English"), ("User", "SPEAKS", "Arabic"), ("User", "SPEAKS", "Turkish")}),
        ("I prefer dark roast coffee, light roasts taste sour", {("User", "PREFERS", "dark roast coffee")}),
        ("I like to think I'm a decent cook", set()),  # not a liking
        ("I used to work at IBM", set()),  # a past employer is no current one
        ("I grew up in Leeds but now I live in York",
         {("User", "GREW_UP_IN", "Leeds"), ("User", "LIVES_IN", "York")}),
        ("I'm a PhD student at ETH Zurich", {("User", "STUDIES_AT", "ETH Zurich")}),
        # what is said of several people reads as what is said of one: plans and lists alike
        ("My parents, Rui and Helena, are going to Rome.",
         {("User", "HAS_PARENT", "Rui"), ("User", "HAS_PARENT", "Helena"),
          ("Rui", "PLANS", "trip to Rome"), ("Helena", "PLANS", "trip to Rome")}),
        ("Sam and I love tea and cake", {("Sam", "LIKES", "tea"), ("Sam", "LIKES", "cake"),
                                         ("User", "LIKES", "tea"), ("User", "LIKES", "cake")}),
    ],
)  # fmt: skip
async def test_relations_from_the_way_people_write(text: str, expected: set[tuple[str, str, str]]) -> None:
    assert await triples(text) == expected
