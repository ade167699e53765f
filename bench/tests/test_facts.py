"""The fact-retrieval bench measures what ingest and search really do, on a one-user set made here."""

import json
from pathlib import Path

from openmemory_bench.facts import WAYS, run


async def test_each_way_is_scored_on_the_set_s_own_ids(tmp_path: Path) -> None:
    user = {
        "user": "t1",
        "memories": [
            {"id": "m1", "text": "User's dentist is Dr. Alves on Rua Augusta.", "date": "2026-01-05"},
            {"id": "m2", "text": "ok thanks", "date": "2026-01-06"},
            {"id": "m3", "text": "Tom is a firefighter in Leeds.", "date": "2026-02-01"},
            {"id": "m4", "text": "User prefers dark mode in every editor.", "date": "2026-02-03"},
        ],
        "questions": [
            {"id": "q1", "question": "who is my dentist?", "relevant": ["m1"], "kind": "direct"},
            {"id": "q2", "question": "which job does Tom have", "relevant": ["m3"], "kind": "paraphrase"},
            {"id": "q3", "question": "what puts out fires?", "relevant": ["m3"], "kind": "paraphrase"},
        ],
    }
    path = tmp_path / "facts.json"
    path.write_text(json.dumps({"users": [user]}))
    report = await run(path)
    assert (report["users"], report["memories"], report["questions"]) == (1, 4, 3)
    for way in WAYS[:2]:  # both of search's orders: the dentist by its words, the firefighter by meaning
        assert report["ways"][way]["by_category"]["direct"]["mrr"] == 1.0
        assert report["ways"][way]["by_category"]["paraphrase"]["recall@5"] == 1.0
    bm25 = report["ways"]["bm25 baseline"]["by_category"]["paraphrase"]
    assert bm25["recall@10"] == 0.5  # "what puts out fires?" shares no term with "firefighter"
    assert len(report["learned_against_fusion"]) == 2
