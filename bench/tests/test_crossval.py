"""Leave-one-conversation-out: the folds, coordinate descent and the report's held-out figures, with
made-up scores (no stores)."""

from dataclasses import replace

import pytest

from openmemory_bench.crossval import (
    GRID,
    UNTUNED,
    Scored,
    average,
    coordinate_descent,
    cross_validate,
    gain,
    leave_one_out,
    majority,
    only_start,
    summary,
)
from openmemory_bench.rerank import Settings


def test_each_conversation_is_held_out_once_and_never_trained_on() -> None:
    folds = leave_one_out(["a", "b", "a", "c"])
    assert folds == [(("b", "c"), "a"), (("a", "c"), "b"), (("a", "b"), "c")]
    with pytest.raises(ValueError, match="two"):
        leave_one_out(["a", "a"])


def test_settings_name_a_constant_by_its_field_wherever_it_lives() -> None:
    s = Settings().with_value("k1", 1.6).with_value("rrf_k", 60)
    assert (s.value("k1"), s.value("rrf_k")) == (1.6, 60)
    assert s.keywords.k1 == 1.6 and s.ranking.rrf_k == 60 and Settings().keywords.k1 != 1.6
    with pytest.raises(KeyError):
        Settings().value("nonsense")


def test_coordinate_descent_finds_the_best_grid_point_and_ignores_gains_below_the_threshold() -> None:
    def score(s: Settings) -> float:  # best at rrf_k 10 and keyword 2.0; graph gains only a hair
        return float(
            -abs(s.value("rrf_k") - 10) / 100 - abs(s.value("keyword") - 2.0) / 10 + s.value("graph") / 1e4
        )

    grid = {"rrf_k": (3, 10, 60), "keyword": (1.0, 2.0), "graph": (0.0, 1.0)}
    start = UNTUNED.with_value("graph", 0.0)
    best = coordinate_descent(score, start, grid, min_gain=0.001)
    assert (best.value("rrf_k"), best.value("keyword"), best.value("graph")) == (10, 2.0, 0.0)
    assert coordinate_descent(score, start, grid, min_gain=0.0).value("graph") == 1.0


def _scored(settings: Settings, groups: dict[str, str]) -> list[Scored]:
    """Questions that find their evidence first when rrf_k is 10 and graph is 0, later otherwise;
    conversation "odd" prefers graph 1."""
    rows = []
    for group, category in groups.items():
        good_k = settings.value("rrf_k") == 10
        good_graph = settings.value("graph") == (1.0 if group == "odd" else 0.0)
        first = "e" if good_k else "x"
        second = "f" if good_graph else "y"
        rows.append(Scored(group, category, (first, second, "z", "w", "v", "f2"), ("e", "f")))
    return rows


def test_cross_validation_tunes_on_the_others_and_reports_the_held_out_figure() -> None:
    groups = {"a": "single-hop", "b": "temporal", "c": "single-hop", "odd": "temporal"}
    grid = {"rrf_k": (5, 10, 60), "graph": (0.0, 1.0)}
    cv = cross_validate(lambda s: _scored(s, groups), list(groups), grid=grid)
    assert [f["held_out"] for f in cv.folds] == ["a", "b", "c", "odd"]
    # every fold finds rrf_k 10; graph 0 wins on the training folds (three of four are not "odd")
    assert all(f["chosen"]["rrf_k"] == 10 for f in cv.folds)
    assert all(f["chosen"]["graph"] == 0.0 for f in cv.folds)
    # held out: "odd" wanted graph 1 and its tuned figure shows it
    odd = next(f for f in cv.folds if f["held_out"] == "odd")["figures"]["overall"]
    assert odd["recall@5"] == 0.5 and cv.held_out["overall"]["recall@5"] == round((1 + 1 + 1 + 0.5) / 4, 4)
    assert cv.untuned_held_out["overall"]["recall@5"] < cv.held_out["overall"]["recall@5"]
    by_name = {row["constant"]: row for row in cv.constants}
    assert by_name["rrf_k"]["majority"] == 10 and by_name["rrf_k"]["chosen"] == [10, 10, 10, 10]
    assert by_name["rrf_k"]["held_out_without"]["recall@5"] < by_name["rrf_k"]["held_out_with"]["recall@5"]
    assert cv.majority.value("rrf_k") == 10 and cv.majority.value("graph") == 0.0
    assert by_name["rrf_k"]["gain"][0] > 0 and by_name["rrf_k"]["without"] == 60
    assert by_name["graph"]["without"] == 0.0  # a signal's "without" is the signal off


def test_a_gain_is_the_mean_paired_difference_with_its_standard_error() -> None:
    assert gain([0.5, 0.5, 0.5]) == (0.5, 0.0)
    mean, se = gain([1.0, 0.0, 1.0, 0.0])
    assert mean == 0.5 and se == round((1 / 3 / 4) ** 0.5, 4)


def test_the_majority_value_and_its_ties() -> None:
    picks = [UNTUNED.with_value("rrf_k", k) for k in (5, 5, 10, 10, 60)]
    assert majority(picks, "rrf_k", UNTUNED.with_value("rrf_k", 10)) == 10  # untuned among the tied
    assert majority(picks, "rrf_k", UNTUNED) == 5  # else the smallest
    assert majority(picks[:3], "rrf_k", UNTUNED) == 5


def test_figures_are_averaged_per_fold_not_per_question() -> None:
    one = summary([Scored("a", "temporal", ("e",), ("e",))], ["a"])
    three = summary([Scored("b", "temporal", ("x",), ("e",))] * 3, ["b"])
    both = average([one, three])
    assert both["overall"]["recall@5"] == 0.5 and both["overall"]["questions"] == 4
    assert both["by_category"]["temporal"]["recall@5"] == 0.5
    assert summary([Scored("a", "temporal", ("e",), ("e",))], ["b"])["overall"]["questions"] == 0
    assert replace(UNTUNED) == UNTUNED


def test_fixed_values_report_each_grid_value_against_the_start_in_sample() -> None:
    from openmemory_bench.crossval import fixed_values

    groups = {"a": "multi-hop", "b": "single-hop", "odd": "temporal"}
    start = UNTUNED.with_value("graph", 0.0)
    rows = fixed_values(lambda s: _scored(s, groups), start, {"rrf_k": (60, 10), "graph": (0.0, 1.0)})
    by_value = {(r["constant"], r["value"]): r for r in rows}
    assert set(by_value) == {("rrf_k", 10), ("graph", 1.0)}  # the start's own values are not compared
    # rrf_k 10 puts "e" first in every question: R@5 and R@10 of "e" gained, half the evidence
    assert by_value[("rrf_k", 10)]["gain"] == (0.5, 0.0) and by_value[("rrf_k", 10)]["moved"] == 3
    # graph 1 helps "odd" only and costs the two others: -0.5 twice, +0.5 once
    assert by_value[("graph", 1.0)]["gain"][0] == round(-0.5 / 3, 4)


def test_only_tunes_from_the_shipped_fusion_with_the_learned_order_off() -> None:
    """The shipped model was trained on every conversation: an `--only` fold measured on top of it
    would see its held-out conversation."""
    shipped = Settings()
    assert shipped.value("learned") is not None
    differ = [name for name in GRID if shipped.value(name) != UNTUNED.value(name)]
    assert len(differ) >= 2
    tuned, kept = differ[0], differ[1:]
    start = only_start([tuned])
    assert start.value("learned") is None
    assert start.value(tuned) == UNTUNED.value(tuned)
    for name in kept:
        assert start.value(name) == shipped.value(name)
