"""The LLM path against the recorded-response OpenAI test server: mapping, malformed output, 429, timeout."""

import json
import re
import uuid
from datetime import UTC, date, datetime

import pytest

from openmemory_core import contracts as c
from openmemory_core.errors import ConfigurationError, Unavailable
from openmemory_core.settings import LLMSettings
from openmemory_ingest.extraction import Fact
from openmemory_ingest.extraction.llm import LLMExtractor
from openmemory_testing import RecordedOpenAITestServer, RecordedReply, at, recorded

AT = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def extractor(server: RecordedOpenAITestServer, **overrides: object) -> LLMExtractor:
    settings = LLMSettings(extractor="llm", base_url=server.base_url, model="recorded-model", **overrides)
    return LLMExtractor(settings)


async def test_facts_entities_relations_and_dates_are_mapped() -> None:
    async with RecordedOpenAITestServer([RecordedReply(recorded("extract_sister_and_move.json"))]) as server:
        facts = await extractor(server, custom_instructions="Never store health data.").extract(
            "My sister Anna lives in Vienna. I moved to Berlin last month.", True, AT
        )
    anna, berlin = facts
    assert anna.text == "User's sister Anna lives in Vienna"
    assert anna.entity_kinds == {"Anna": "person", "Vienna": "place"}
    assert [(r.subject, r.type, r.object) for r in anna.relations] == [
        ("User", "HAS_SISTER", "Anna"),
        ("Anna", "LIVES_IN", "Vienna"),
    ]
    assert berlin.relations[0].type == "LIVES_IN" and berlin.refers_to == date(2023, 4, 1)
    assert berlin.categories == ["travel", "personal"]
    (request,) = server.requests
    assert request["model"] == "recorded-model" and request["temperature"] == 0
    system, user = request["messages"]
    assert "Never store health data." in system["content"]  # custom instructions steer extraction
    assert "2023-05-08T13:56:00+00:00" in user["content"]


async def test_verbatim_adds_need_no_model_call() -> None:
    async with RecordedOpenAITestServer([RecordedReply(status=500)]) as server:
        (fact,) = await extractor(server).extract("Note to self: Paris trip", False, AT)
    assert fact.text == "Note to self: Paris trip" and server.requests == []


async def test_malformed_output_is_asked_again_and_a_fenced_answer_is_accepted() -> None:
    replies = [
        RecordedReply("Sure! {not json"),
        RecordedReply('{"facts": [{"txt": 1}]}'),
        RecordedReply(recorded("extract_fenced.md")),
    ]
    async with RecordedOpenAITestServer(replies) as server:
        (fact,) = await extractor(server).extract("I'm vegetarian", True, AT)
    assert fact.text == "User is vegetarian" and len(server.requests) == 3
    assert "was not valid" in server.requests[1]["messages"][1]["content"]


async def test_malformed_every_time_is_unavailable_with_the_reason() -> None:
    async with RecordedOpenAITestServer([RecordedReply("no json at all")]) as server:
        with pytest.raises(Unavailable, match="malformed JSON 3 times"):
            await extractor(server, malformed_retries=2).extract("I'm vegetarian", True, AT)
    assert len(server.requests) == 3


async def test_rate_limits_and_timeouts_are_retryable_failures() -> None:
    async with RecordedOpenAITestServer([RecordedReply(status=429)]) as server:
        with pytest.raises(Unavailable, match="rate limiting"):
            await extractor(server).extract("I'm vegetarian", True, AT)
    async with RecordedOpenAITestServer([RecordedReply(recorded("extract_fenced.md"), delay=2)]) as server:
        with pytest.raises(Unavailable, match="did not answer"):
            await extractor(server, timeout_seconds=0.3).extract("I'm vegetarian", True, AT)


def stored(text: str) -> c.Memory:
    return c.Memory(
        id=str(uuid.uuid4()), user_id="u", app="a", text=text, created_at=at(0), updated_at=at(0),
        content_hash=text, request_id="r",
    )  # fmt: skip


async def test_decisions_show_small_ids_and_map_back_to_real_ones() -> None:
    existing = [stored("User lives in Lisbon"), stored("User is vegetarian")]
    facts = [Fact("User is vegetarian"), Fact("User eats fish now"), Fact("User has a cat")]
    async with RecordedOpenAITestServer([RecordedReply(recorded("decide_mixed.json"))]) as server:
        decisions = await extractor(server).decide(facts, existing)
    assert [(d.event, d.fact, d.target) for d in decisions] == [
        ("NONE", 0, existing[1].id),
        ("ADD", 1, None),  # it named an id it was never shown: the fact is kept, nothing deleted
        ("ADD", 2, None),  # a fact it forgot is kept, not lost
    ]
    prompt_text = json.dumps(server.requests[0])
    assert "0: User lives in Lisbon" in prompt_text and "1: User is vegetarian" in prompt_text
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", prompt_text)  # no real ids reach the model


async def test_nothing_stored_means_no_decision_call() -> None:
    async with RecordedOpenAITestServer([RecordedReply(status=500)]) as server:
        decisions = await extractor(server).decide([Fact("a"), Fact("b")], [])
    assert [d.event for d in decisions] == ["ADD", "ADD"] and server.requests == []


def test_the_llm_extractor_needs_an_endpoint() -> None:
    with pytest.raises(ConfigurationError, match="OPENMEMORY_LLM_BASE_URL"):
        LLMExtractor(LLMSettings(extractor="llm"))
