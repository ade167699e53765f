"""A memory that states a plan for a date that has passed carries a note in search results; a plan
still ahead, and a past event told as past, do not; the stored memory never changes."""

from __future__ import annotations

from datetime import UTC, datetime

from openmemory_core import contracts as c
from openmemory_ingest.service import IngestService
from openmemory_search.service import SearchService
from openmemory_testing import unique


async def test_a_past_plan_is_noted_in_search_results_and_a_future_one_is_not(
    stores: tuple[IngestService, SearchService],
) -> None:
    ingest, search = stores
    user = unique("plans")
    told = datetime(2026, 2, 1, 9, tzinfo=UTC)
    texts = {
        "past": "I'm planning a trip to Rome on 5 March 2026",
        "relative": "I'm going to Naples next week",
        "future": "I'm planning a trip to Lisbon on 5 March 2099",
        "event": "I went to Porto on 5 January 2026",
    }
    ids = {}
    for name, text in texts.items():
        done = await ingest.apply(c.AddCommand(user_id=user, app="a", text=text, issued_at=told))
        ids[name] = done.summary[0].id
    found = await search.search(
        c.SearchRequest(user_id=user, query="trips to Rome, Naples, Lisbon, Porto", limit=10)
    )
    notes = {h.memory.id: h.note for h in found.hits}
    assert set(notes) == set(ids.values())
    assert (
        notes[ids["past"]]
        == "this plan's date (2026-03-05) has passed: it was told as ahead, read it as past"
    )
    # "next week", told on 1 February 2026, was the week of 2 February
    relative = notes[ids["relative"]]
    assert relative is not None and "the week of 2026-02-02" in relative
    assert notes[ids["future"]] is None and notes[ids["event"]] is None
    (stored,) = await ingest.vectors.get(user, [ids["past"]])
    assert stored.text == "User is planning a trip to Rome on 5 March 2026"  # nothing stored changes
