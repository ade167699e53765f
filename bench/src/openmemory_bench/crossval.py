"""Leave-one-conversation-out cross-validation of the ranking constants (`bench locomo --cv`).

For each conversation in turn: choose the constants on the others (coordinate descent over a small
grid per constant, from the untuned values; a change must gain at least `MIN_GAIN` on the training
conversations to be taken), and measure the choice on the one left out. The average of the held-out
figures is the honest estimate of what tuning buys; each constant's held-out gain is the held-out
figure of a fold's choice against the same choice with that constant back at its untuned value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openmemory_bench.rerank import Asked, Remembered, Reranker, Settings, UserMemories, agreement
from openmemory_bench.retrieval import Tally
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.text.keywords import KeywordParams
from openmemory_search.ranking import RankingParams

#: What tuning maximises on the training conversations: the mean of R@5 and R@10.
OBJECTIVE = ("recall@5", "recall@10")
#: A change of constant is taken only if it gains this much of the objective on the training
#: conversations; below it, the current (first: the untuned) value stays.
MIN_GAIN = 0.002
ROUNDS = 2

#: Where tuning starts and what "without" means for each constant: the textbook values (RRF k 60,
#: equal weights, BM25's k1 1.2 and b 0.75) and every addition off (no strength, no neighbour lift,
#: no context).
UNTUNED = Settings(
    RankingParams(rrf_k=60, dense=1.0, keyword=1.0, graph=1.0, time=1.0, recency=1.0, dense_strength=0.0,
                  keyword_strength=0.0, neighbour_top=5, neighbour_share=0.0, recency_pool=10,
                  told_time=0.0, parts=0.0, sitting=0.0, diversity=0.0, season=0.0, week=0.0,
                  order=0.0, event=0.0),
    KeywordParams(k1=1.2, b=0.75, average_length=12.0, context_share=0.0),
)  # fmt: skip

#: What "without" a constant means in its held-out gain: the untuned value, and for a signal whose
#: untuned weight is 1 (graph, time, recency), the signal off.
WITHOUT = UNTUNED.with_value("graph", 0.0).with_value("time", 0.0).with_value("recency", 0.0)

#: A few values per constant, around the textbook one and the shipped one.
GRID: dict[str, tuple[Any, ...]] = {
    "rrf_k": (2, 3, 5, 10, 20, 60),
    "keyword": (0.75, 1.0, 1.5, 2.0, 2.5),
    "graph": (0.0, 0.25, 0.5, 1.0),
    "time": (0.0, 0.5, 1.0, 2.0),
    "recency": (0.0, 0.5, 1.0, 2.0),
    "recency_pool": (5, 10, 20),
    "dense_strength": (0.0, 0.05, 0.1, 0.2),
    "keyword_strength": (0.0, 0.1, 0.2, 0.4),
    "neighbour_share": (0.0, 0.1, 0.2, 0.3, 0.4),
    "neighbour_top": (3, 5, 8, 12),
    "context_share": (0.0, 0.25, 0.5, 0.75),
    "k1": (0.4, 0.6, 0.9, 1.2, 1.6),
    "b": (0.1, 0.25, 0.4, 0.6, 0.75),
    "average_length": (8.0, 12.0, 20.0),
    "told_time": (0.0, 0.5, 1.0, 2.0, 3.0),
    "parts": (0.0, 0.25, 0.5, 1.0),
    "sitting": (0.0, 0.25, 0.5, 1.0, 2.0),
    "diversity": (0.0, 0.1, 0.25, 0.5),
    "season": (0.0, 0.5, 1.0, 2.0),
    "week": (0.0, 0.5, 1.0, 2.0),
    "order": (0.0, 0.5, 1.0, 2.0),
    "event": (0.0, 0.5, 1.0, 2.0),
}


@dataclass(frozen=True)
class Scored:
    """One question's figures under one setting."""

    group: str  # its conversation
    category: str
    ranked: tuple[str, ...]
    evidence: tuple[str, ...]


def leave_one_out(groups: Sequence[str]) -> list[tuple[tuple[str, ...], str]]:
    """(training groups, held-out group) for each group, in order; needs two groups or more."""
    unique = list(dict.fromkeys(groups))
    if len(unique) < 2:
        raise ValueError("cross-validation needs at least two conversations")
    return [(tuple(g for g in unique if g != held), held) for held in unique]


def summary(scored: Sequence[Scored], groups: Sequence[str] | set[str]) -> dict[str, Any]:
    """The metrics over the questions of `groups`: overall and per category."""
    wanted = set(groups)
    overall, by_category = Tally(), dict[str, Tally]()
    for s in scored:
        if s.group in wanted:
            overall.add(list(s.ranked), s.evidence)
            by_category.setdefault(s.category, Tally()).add(list(s.ranked), s.evidence)
    return {"overall": overall.means(), "by_category": {k: t.means() for k, t in sorted(by_category.items())}}


def question_objective(s: Scored) -> float:
    """One question's share of the objective: the mean of its R@5 and R@10."""
    return recall_objective(s.ranked, s.evidence)


def recall_objective(ranked: Sequence[str], evidence: Sequence[str]) -> float:
    """The mean of R@5 and R@10 of one ranking against what answers its question."""
    wanted = set(evidence)
    return (len(wanted & set(ranked[:5])) + len(wanted & set(ranked[:10]))) / (2 * len(wanted))


def paired_gain(these: Sequence[Scored], those: Sequence[Scored]) -> tuple[float, float]:
    """The gain of `these` over `those` (the same questions in the same order): the mean paired
    difference of the per-question objective, with its standard error."""
    return gain([question_objective(a) - question_objective(b) for a, b in zip(these, those, strict=True)])


def gain(diffs: Sequence[float]) -> tuple[float, float]:
    """The mean of paired per-question differences and its standard error."""
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return round(mean, 4), round((var / n) ** 0.5, 4)


def objective(figures: dict[str, Any]) -> float:
    return float(sum(figures["overall"][m] for m in OBJECTIVE) / len(OBJECTIVE))


def coordinate_descent(
    score: Callable[[Settings], float],
    start: Settings,
    grid: Mapping[str, Sequence[Any]],
    rounds: int = ROUNDS,
    min_gain: float = MIN_GAIN,
) -> Settings:
    """From `start`, one constant at a time: the grid value that scores best, if it beats the
    current one by more than `min_gain`; `rounds` passes, or fewer when a pass changes nothing."""
    current, best = start, score(start)
    for _ in range(rounds):
        moved = False
        for name, values in grid.items():
            tried = [(score(current.with_value(name, v)), v) for v in values if v != current.value(name)]
            if tried:
                top, value = max(tried, key=lambda pair: pair[0])
                if top > best + min_gain:
                    current, best, moved = current.with_value(name, value), top, True
        if not moved:
            break
    return current


def average(figures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The plain mean of several folds' figures (overall and per category), as the report quotes."""

    def mean(rows: list[dict[str, float]]) -> dict[str, float]:
        keys = [k for k in rows[0] if k != "questions"]
        return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in keys} | {
            "questions": sum(int(r["questions"]) for r in rows)
        }

    categories = sorted({k for f in figures for k in f["by_category"]})
    return {
        "overall": mean([f["overall"] for f in figures]),
        "by_category": {
            k: mean([f["by_category"][k] for f in figures if k in f["by_category"]]) for k in categories
        },
    }


def majority(chosen: Sequence[Settings], name: str, untuned: Settings) -> Any:
    """The value most folds chose; on a tie, the untuned value if it is among the tied, else the
    smallest."""
    counts = Counter(s.value(name) for s in chosen)
    top = max(counts.values())
    tied = [v for v, n in counts.items() if n == top]
    return untuned.value(name) if untuned.value(name) in tied else min(tied)


@dataclass
class CrossValidation:
    folds: list[dict[str, Any]] = field(default_factory=list)
    held_out: dict[str, Any] = field(default_factory=dict)  # average of the folds' held-out figures
    held_out_pooled: dict[str, Any] = field(default_factory=dict)  # every held-out question at once
    untuned_held_out: dict[str, Any] = field(default_factory=dict)
    constants: list[dict[str, Any]] = field(default_factory=list)
    majority: Settings = field(default_factory=Settings)


def chosen_on(
    evaluate: Callable[[Settings], list[Scored]],
    training: Sequence[str],
    start: Settings,
    grid: Mapping[str, Sequence[Any]],
    min_gain: float = MIN_GAIN,
) -> Settings:
    """The constants coordinate descent chooses from `start` on the questions of `training` alone."""

    def on_training(settings: Settings) -> float:
        return objective(summary(evaluate(settings), training))

    return coordinate_descent(on_training, start, grid, min_gain=min_gain)


def cross_validate(
    evaluate: Callable[[Settings], list[Scored]],
    groups: Sequence[str],
    grid: Mapping[str, Sequence[Any]] = GRID,
    start: Settings = UNTUNED,
    min_gain: float = MIN_GAIN,
    without: Settings = WITHOUT,
) -> CrossValidation:
    """Leave-one-group-out: tune on the others, measure on the one left out. `evaluate` scores every
    question under a setting (it is called with the same settings many times: cache it)."""
    result = CrossValidation()
    chosen: list[Settings] = []
    held, untuned_held = [], []
    diffs: dict[str, list[float]] = {name: [] for name in grid}
    pooled: list[Scored] = []
    for training, test in leave_one_out(groups):
        pick = chosen_on(evaluate, training, start, grid, min_gain)
        chosen.append(pick)
        figures = summary(evaluate(pick), [test])
        held.append(figures)
        untuned_held.append(summary(evaluate(start), [test]))
        mine = [s for s in evaluate(pick) if s.group == test]
        pooled += mine
        off: dict[str, Any] = {}
        for name in grid:
            other = [s for s in evaluate(pick.with_value(name, without.value(name))) if s.group == test]
            off[name] = summary(other, [test])["overall"]
            diffs[name] += [
                question_objective(a) - question_objective(b) for a, b in zip(mine, other, strict=True)
            ]
        changed = {name: pick.value(name) for name in grid if pick.value(name) != start.value(name)}
        result.folds.append(
            {"held_out": test, "chosen": changed, "figures": figures, "without": off,
             "training_objective": round(objective(summary(evaluate(pick), training)), 4)}
        )  # fmt: skip
    result.held_out = average(held)
    result.untuned_held_out = average(untuned_held)
    result.held_out_pooled = summary(pooled, groups)
    final = start
    for name in grid:
        value = majority(chosen, name, start)
        final = final.with_value(name, value)
        with_it = average([{"overall": f["figures"]["overall"], "by_category": {}} for f in result.folds])
        off = average([{"overall": f["without"][name], "by_category": {}} for f in result.folds])
        result.constants.append(
            {"constant": name, "untuned": start.value(name), "without": without.value(name),
             "majority": value, "gain": gain(diffs[name]), "chosen": [s.value(name) for s in chosen],
             "held_out_with": with_it["overall"], "held_out_without": off["overall"]}
        )  # fmt: skip
    result.majority = final
    return result


def scored(asked: Sequence[Asked], ranked: Callable[[Asked], list[str]]) -> list[Scored]:
    return [Scored(a.conversation, a.category, tuple(ranked(a)), a.evidence) for a in asked]


#: The steps added after the other constants were shipped (`--only` tunes these from the shipped
#: values of the rest): query decomposition, sittings, diversity, and the time forms beyond `time`.
STEPS = ("parts", "sitting", "diversity", "season", "week", "order", "event")


class Evaluations:
    """Each setting's questions re-ranked over the cached candidates (`scored`), each setting once:
    tuning asks for many settings again, and `--cv` tunes twice over the same candidates (the fusion's
    constants, then each fold's for the learned order), so both share one."""

    def __init__(self, asked: list[Asked], users: dict[str, UserMemories], candidates: int) -> None:
        embedder = MiniLMEmbedder(spinning=False)  # for the parts and events search embeds
        self.asked = asked
        # the cross-encoder too, for the settings that run it (the shipped ones), as search does
        self.reranker = Reranker(users, candidates, embed=embedder.embed_sync, cross=Remembered(None))
        self.memo: dict[Settings, list[Scored]] = {}

    def __call__(self, settings: Settings) -> list[Scored]:
        if settings not in self.memo:
            self.memo[settings] = scored(self.asked, lambda a: self.reranker.rank(a, settings))
        return self.memo[settings]


def run_cv(
    asked: list[Asked],
    users: dict[str, UserMemories],
    candidates: int,
    only: Sequence[str] | None = None,
    evaluate: Evaluations | None = None,
) -> dict[str, Any]:
    """The whole `--cv` report over cached candidates: held-out figures (the headline), in-sample
    ones beside them, the same run's BM25 baseline, and each constant's held-out gain. `only`: tune
    just these constants, from the shipped values of every other, the learned order off (cheaper: a
    few minutes, where the whole grid takes most of an hour on 2 busy cores); the other constants'
    shipped values were the
    folds' majority, so the held-out fold had a say in them: the gains of `only` are held out, the
    level of the figures a little less so. `evaluate`: evaluations to share with another tuning over
    the same candidates."""
    grid, start = GRID, UNTUNED
    if only:
        grid, start = {name: GRID[name] for name in only}, only_start(only)
    evaluate = evaluate or Evaluations(asked, users, candidates)
    groups = list(dict.fromkeys(a.conversation for a in asked))
    cv = cross_validate(evaluate, groups, grid=grid, start=start)
    per_group = [[g] for g in groups]
    bm25 = scored(asked, lambda a: a.bm25)
    product = scored(asked, lambda a: a.product)
    shipped = Settings()
    return {
        "conversations": groups,
        "questions": len(asked),
        "settings_evaluated": len(evaluate.memo),
        "agreement_with_service": agreement(evaluate.reranker, asked, shipped),
        "held_out": {
            "tuned (cross-validated)": cv.held_out,
            "tuned (cross-validated), pooled over the held-out questions": cv.held_out_pooled,
            "untuned": cv.untuned_held_out,
            "bm25 baseline": average([summary(bm25, g) for g in per_group]),
        },
        "in_sample": {
            "shipped, through the search service": average([summary(product, g) for g in per_group]),
            "shipped, re-ranked here": average([summary(evaluate(shipped), g) for g in per_group]),
            "folds' majority": average([summary(evaluate(cv.majority), g) for g in per_group]),
        },
        "folds": cv.folds,
        "constants": cv.constants,
        "majority": {name: cv.majority.value(name) for name in grid},
        "shipped": {name: shipped.value(name) for name in grid},
        "tuned": list(grid),
        "fixed": fixed_values(evaluate, start, grid) if only else [],
    }


def only_start(only: Sequence[str]) -> Settings:
    """Where `--only` starts: the shipped constants but `only`'s, which start untuned, and the learned
    order off (the shipped model was trained on every conversation, the held-out one included)."""
    start = Settings().with_value("learned", None)
    for name in only:
        start = start.with_value(name, UNTUNED.value(name))
    return start


def fixed_values(
    evaluate: Callable[[Settings], list[Scored]], start: Settings, grid: Mapping[str, Sequence[Any]]
) -> list[dict[str, Any]]:
    """In sample, nothing tuned: each grid value of each constant against `start`, over every
    question: the paired gain ± SE of the objective, and how many top tens it moved."""
    base = evaluate(start)
    rows = []
    for name, values in grid.items():
        for value in values:
            if value == start.value(name):
                continue
            other = evaluate(start.with_value(name, value))
            diffs = [question_objective(a) - question_objective(b) for a, b in zip(other, base, strict=True)]
            moved = sum(a.ranked[:10] != b.ranked[:10] for a, b in zip(other, base, strict=True))
            rows.append({"constant": name, "value": value, "gain": gain(diffs), "moved": moved})
    return rows


def cv_markdown(report: dict[str, Any]) -> str:
    head = "| figures | R@5 | R@10 | hit@10 | all@10 | MRR |"
    lines = [
        f"Leave-one-conversation-out over {len(report['conversations'])} conversations, "
        f"{report['questions']} questions; averages of the per-conversation figures; "
        f"{report['settings_evaluated']} settings evaluated. The re-ranker gives the search service's "
        f"top ten for {report['agreement_with_service']['top10_identical']:.1%} of the questions "
        f"(the same top-five set for {report['agreement_with_service']['top5_same_set']:.1%}).",
        "",
        head,
        "|---|---|---|---|---|---|",
    ]
    for kind in ("held_out", "in_sample"):
        for name, figures in report[kind].items():
            m = figures["overall"]
            label = f"{name} ({'held out' if kind == 'held_out' else 'in sample'})"
            row = [m["recall@5"], m["recall@10"], m["hit@10"], m["all@10"], m["mrr"]]
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "| category (held out, tuned) | R@5 | R@10 | MRR |", "|---|---|---|---|"]
    for name, m in report["held_out"]["tuned (cross-validated)"]["by_category"].items():
        lines.append(f"| {name} | {m['recall@5']} | {m['recall@10']} | {m['mrr']} |")
    lines += [
        "",
        "| held out | chosen on the other four (changes from untuned) | R@5 | R@10 |",
        "|---|---|---|---|",
    ]
    for fold in report["folds"]:
        m = fold["figures"]["overall"]
        chosen = ", ".join(f"{k} {v}" for k, v in fold["chosen"].items()) or "(untuned)"
        lines.append(f"| {fold['held_out']} | {chosen} | {m['recall@5']} | {m['recall@10']} |")
    lines += [
        "",
        "| constant | shipped | untuned | folds chose | majority | held-out R@5 / R@10 with | without "
        "(value) | held-out gain ± SE (mean of R@5, R@10 per question) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["constants"]:
        w, wo = row["held_out_with"], row["held_out_without"]
        lines.append(
            f"| {row['constant']} | {report['shipped'][row['constant']]} | {row['untuned']} | "
            f"{', '.join(str(v) for v in row['chosen'])} | {row['majority']} | "
            f"{w['recall@5']} / {w['recall@10']} | {wo['recall@5']} / {wo['recall@10']} ({row['without']}) | "
            f"{row['gain'][0]:+.4f} ± {row['gain'][1]:.4f} |"
        )
    if report.get("fixed"):
        lines += [
            "",
            "| constant = value (in sample, nothing tuned) | gain ± SE against the start | top tens moved |",
            "|---|---|---|",
        ]
        for row in report["fixed"]:
            lines.append(
                f"| {row['constant']} = {row['value']} | {row['gain'][0]:+.4f} ± {row['gain'][1]:.4f} "
                f"| {row['moved']} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m openmemory_bench.crossval --cv-cache FILE [--only a,b] [--out FILE.json]`: the
    cross-validation over a cache that `openmemory bench locomo --cv --cv-cache FILE` wrote."""
    import argparse
    import json
    from pathlib import Path

    from openmemory_bench.runner import _read_cache

    parser = argparse.ArgumentParser(prog="python -m openmemory_bench.crossval")
    parser.add_argument("--cv-cache", type=Path, required=True)
    parser.add_argument("--only", help="comma list of constants to tune (e.g. " + ",".join(STEPS) + ")")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    cached = _read_cache(args.cv_cache)
    if cached is None:
        parser.error(f"no cache at {args.cv_cache}: run `openmemory bench locomo --cv --cv-cache FILE` first")
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    unknown = sorted(set(only or []) - set(GRID))
    if unknown:
        parser.error(f"no such constants: {', '.join(unknown)}")
    report = run_cv(cached["asked"], cached["users"], cached["candidates"], only)
    print(cv_markdown(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
