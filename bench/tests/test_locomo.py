"""The LoCoMo reader's defect handling and the retrieval metrics, on a small file made here."""

import json
from pathlib import Path

import pytest

from openmemory_bench.locomo import Conversation, load
from openmemory_bench.retrieval import Bm25, Scoreboard, Tally


def write_sample(path: Path) -> Path:
    sample = {
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a cat."},
                {"speaker": "Bo", "dia_id": "D1:2", "text": "Look!", "blip_caption": "a cat on a sofa"},
            ],
            "session_2_date_time": "9:00 am on 1 June, 2023",
            "session_2": [{"speaker": "Ana", "dia_id": "D2:5", "text": "We moved to Oslo."}],
            "session_3_date_time": "10:00 am on 2 June, 2023",  # a date with no session
        },
        "qa": [
            {"question": "q1", "answer": "a", "evidence": ["D1:1; D2:5"], "category": 1},
            {"question": "q2", "answer": "a", "evidence": ["D:1:2", "D2:05"], "category": 2},
            {"question": "q3", "answer": "a", "evidence": ["D", "D9:9"], "category": 4},
            {"question": "q4", "adversarial_answer": "x", "evidence": ["D1:1"], "category": 5},
        ],
    }
    path.write_text(json.dumps([sample]))
    return path


def test_defects_are_repaired_or_dropped_and_counted(tmp_path: Path) -> None:
    (conversation,) = load(write_sample(tmp_path / "locomo.json"))
    assert [t.dia_id for t in conversation.turns] == ["D1:1", "D1:2", "D2:5"]
    assert conversation.turns[1].text == "Bo: Look! [shares a photo of a cat on a sofa]"
    assert conversation.turns[2].at.isoformat() == "2023-06-01T09:00:00+00:00"
    assert [(q.text, q.evidence) for q in conversation.questions] == [
        ("q1", ("D1:1", "D2:5")),
        ("q2", ("D1:2", "D2:5")),
    ]  # q3 has no usable evidence left; q4 is adversarial (category 5)
    assert sorted(conversation.dropped_evidence) == ["D", "D9:9"]
    assert conversation.repaired_evidence == 3


def test_metrics() -> None:
    tally = Tally()
    tally.add(["a", "x", "b"] + ["y"] * 7, ("a", "b"))  # both in the top 5, first at rank 1
    tally.add(["x"] * 5 + ["c"] + ["y"] * 4, ("c", "d"))  # one of two, at rank 6
    means = tally.means()
    assert means["recall@5"] == pytest.approx((1 + 0) / 2)
    assert means["recall@10"] == pytest.approx((1 + 0.5) / 2)
    assert means["hit@10"] == 1.0 and means["all@10"] == 0.5
    assert means["mrr"] == round((1 + 1 / 6) / 2, 4)  # reported to four places
    board = Scoreboard()
    board.add("temporal", ["a"], ("a",))
    board.add("single-hop", ["z"], ("a",))
    report = board.report()
    assert report["by_category"] == {
        "single-hop": {
            "recall@5": 0.0,
            "recall@10": 0.0,
            "hit@10": 0.0,
            "all@10": 0.0,
            "mrr": 0.0,
            "questions": 1,
        },
        "temporal": {
            "recall@5": 1.0,
            "recall@10": 1.0,
            "hit@10": 1.0,
            "all@10": 1.0,
            "mrr": 1.0,
            "questions": 1,
        },
    }


async def test_the_harness_runs_the_product_end_to_end(tmp_path: Path) -> None:
    from openmemory_bench.runner import markdown, run

    report = await run(write_sample(tmp_path / "locomo.json"), latency_samples=2)
    assert report["questions"] == 2 and report["conversations"] == 1
    # Three turns only: every evidence turn is within the top 10, through ingest, NATS and search.
    assert report["overall"]["recall@10"] == 1.0 and report["baselines"]["bm25"]["overall"]["questions"] == 2
    assert report["evidence"] == {"dropped": 2, "dropped_ids": ["D", "D9:9"], "repaired": 3}
    assert report["latency_ms"]["search_p50"] > 0 and report["throughput"]["memories"] == 3
    assert "| hybrid (ours) | 1.0 |" in markdown(report)
    # the same searches with the learned order off, and the shipped order's paired gain over them
    assert report["fusion_alone"]["overall"]["recall@10"] == 1.0 and report["learned_gain"] == (0.0, 0.0)
    assert "| hybrid, the learned order off | 1.0 |" in markdown(report)
    assert "learned order against the fusion alone, mean of R@5 and R@10 per question: +0.0000" in markdown(
        report
    )


async def test_the_scale_bench_builds_and_times_searches() -> None:
    from openmemory_bench.scale import SEARCH_STAGES, queries, run, synthetic

    assert synthetic(3) == synthetic(3) and len({text for text, _ in synthetic(200)}) > 150
    assert all(q.strip() for q in queries(20))
    report = await run([40, 80], questions=5)
    assert set(report["sizes"]) == {"40", "80"}
    for size in report["sizes"].values():
        # every question asked both ways, each way timed, and the gateway's stages read from /metrics
        assert size["service"]["all"]["n"] == size["mcp"]["all"]["n"] == 5
        assert 0 < size["service"]["all"]["p50_ms"] < size["mcp"]["all"]["p50_ms"]
        assert size["stages"]["search_request"]["calls"] == 5 and size["stages"]["auth"]["calls"] == 5
        # and the search service's own stages: every search, both ways, passes each, within its whole
        stages = size["search_stages"]
        assert {name: stages[name]["calls"] for name in SEARCH_STAGES} == dict.fromkeys(SEARCH_STAGES, 10)
        assert sum(stages[name]["mean_ms"] for name in SEARCH_STAGES) <= size["service_histogram"]["mean_ms"]
    assert report["sizes"]["80"]["memories"] == 80


def test_the_bm25_baseline_ranks_by_rare_shared_terms() -> None:
    bm25 = Bm25({
        "D1:1": "Caroline: I went to a pottery class yesterday.",
        "D1:2": "Melanie: Pottery sounds fun! I painted a sunset.",
        "D1:3": "Caroline: The class was fun.",
        "D1:4": "Melanie: Fun fun fun.",
    })  # fmt: skip
    found = bm25.search("pottery class", 10)
    assert found[0] == "D1:1" and set(found[1:]) == {"D1:2", "D1:3"}  # both terms first, then one of them
    assert bm25.search("sunset", 10) == ["D1:2"]
    assert bm25.search("where is the zebra", 10) == []
    assert bm25.search("fun", 1) == ["D1:4"]  # more often, in a shorter text


def test_every_user_adds_at_once_each_in_order(tmp_path: Path) -> None:
    from openmemory_bench.runner import arrival_order

    (three,) = load(write_sample(tmp_path / "locomo.json"))
    one = Conversation(sample_id="conv-y", turns=three.turns[:1], questions=[])
    order = [(conversation.sample_id, index) for conversation, index in arrival_order([three, one])]
    assert order == [("conv-x", 0), ("conv-y", 0), ("conv-x", 1), ("conv-x", 2)]
