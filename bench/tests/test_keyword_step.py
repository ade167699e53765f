import pytest

from openmemory_bench import keyword_step


async def test_each_way_asks_every_question_twice_and_finds_keyword_hits() -> None:
    report = await keyword_step.run([400], questions=12)
    (row,) = report["sizes"]
    assert row["memories"] == 400
    for way in ("after a write", "no write between"):
        assert row[way]["n"] == 24
        assert 0 < row[way]["p50_ms"] <= row[way]["p95_ms"]
    assert row["questions_with_hits"] > 0.5  # the questions name the memories' people and places
    assert "| 400 |" in keyword_step.markdown(report)


async def test_a_run_with_nothing_to_measure_is_refused() -> None:
    for sizes, questions in (([], 10), ([0], 10), ([100], 0)):
        with pytest.raises(ValueError, match="at least"):
            await keyword_step.run(sizes, questions)
