"""The knowledge-update bench scores what ingest and search really do, on a one-sequence set."""

import json
from pathlib import Path

from openmemory_bench.updates import run


async def test_a_move_is_scored_as_an_update_and_the_new_home_first(tmp_path: Path) -> None:
    sequence = {
        "id": "t1",
        "statements": [
            {"at": "2026-01-05T10:00:00+00:00", "text": "I live in Lisbon and work at Acme."},
            {"at": "2026-02-20T10:00:00+00:00", "text": "I moved to Porto.",
             "changes": {"decision": "UPDATE", "old_key_words": ["Lisbon"], "new_key_words": ["Porto"]}},
            {"at": "2026-02-21T10:00:00+00:00", "text": "I adopted a cat called Miso.",
             "changes": {"decision": "UPDATE", "old_key_words": ["Acme"], "new_key_words": ["Miso"]}},
        ],
        "questions": [
            {"text": "where do I live?", "current_key_words": ["Porto"], "superseded_key_words": ["Lisbon"]},
            {"text": "where do I live?", "current_key_words": ["Lisbon"], "superseded_key_words": []},
        ],
    }  # fmt: skip
    path = tmp_path / "updates.json"
    path.write_text(json.dumps({"sequences": [sequence]}))
    report = await run(path)
    # The move superseded the Lisbon memory; the cat changed nothing of Acme (a wrong expectation,
    # on purpose); the new home ranks first, so the question expecting Lisbon first misses.
    assert report["decisions_right"] == "1/2"
    assert report["current_first"] == "1/2"
