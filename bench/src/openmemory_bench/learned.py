"""The learned order (`ranking.LearnedOrder`), trained and measured leave-one-conversation-out.

`python -m openmemory_bench.learned --cv-cache FILE [--out FILE.json]`, over the candidates that
`openmemory bench locomo --cv --cv-cache FILE` cached. For each conversation, a logistic regression is
trained on the other four (each fused candidate of each question is one row, `ranking.features`; its
label: it holds a turn the question's answer rests on) and measured on the fifth, through the same
`HybridRanker` search runs; the report gives the average of the five held-out figures beside the
fused order's, the paired gain with its standard error, each fold's weights, and the model trained on
all five conversations (what ships as `ranking.LEARNED`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from openmemory_bench.crossval import (
    GRID,
    STEPS,
    UNTUNED,
    Evaluations,
    Scored,
    average,
    chosen_on,
    leave_one_out,
    paired_gain,
    scored,
    summary,
)
from openmemory_bench.rerank import Asked, Reranker, Settings, UserMemories
from openmemory_search.ranking import FEATURES, LearnedOrder, features

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

#: Logistic regression: L2 penalty on the standardised weights, full-batch gradient steps. Fixed
#: before any held-out figure was seen; not tuned.
L2 = 0.01
ROUNDS = 400
RATE = 0.5
#: Every fused candidate is a row (no cut at search's limit).
ALL = 1_000_000
#: Features fitted after the others, each group with the weights before it held (`fit`): who said
#: it (`ranking.features`), then whether the turn names something particular.
LATER = (("said_by_named", "said_by_other"), ("particular",))


def rows(reranker: Reranker, asked: Asked, settings: Settings) -> tuple[list[list[float]], list[float]]:
    """One question's candidates in fusion's order (the learned order off): features and labels."""
    # (`finish` also moves a superseded memory after its replacement, which search does after the
    # order: LoCoMo's verbatim turns replace nothing, so the rows are the ones search would see)
    ordered = reranker.ordered(asked, _plain(settings), ALL)
    turns = reranker.users[asked.user].turns
    wanted = set(asked.evidence)
    labels = [float(any(t in wanted for t in turns.get(f.memory.id, []))) for f in ordered]
    return features(ordered, asked.query), labels


def fit(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> LearnedOrder:
    """Logistic regression on standardised features, positives and negatives weighted to half each
    (a question has a few answer turns among about a hundred candidates).

    In steps: first every feature but the `LATER` ones, then each group of `LATER` alone with the
    weights before it held, their score the offset. So who said it (`LATER[0]`) changes nothing that the
    other features learn: a question that names no speaker has the same value of both for every
    candidate, and is ordered by the first step and `particular` alone. Whether a turn names
    something particular comes last, on top of both, and changes none of their weights."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a feature constant in training says nothing
    z = (x - mean) / scale
    share = float(y.mean())
    balance = np.where(y > 0, 0.5 / share, 0.5 / (1 - share))
    named = [name for group in LATER for name in group]
    if not set(named) <= set(FEATURES) or len(set(named)) != len(named):
        raise ValueError(f"the later steps {LATER} must name features of ranking.FEATURES, each once")
    groups = [np.array([name in group for name in FEATURES]) for group in LATER]
    first = ~np.any(groups, axis=0)
    w, b = np.zeros(z.shape[1]), 0.0
    for step in (first, *groups):
        offset = z @ w + b  # the earlier steps' score, held in this one
        ws, bs = np.zeros(int(step.sum())), 0.0
        for _ in range(ROUNDS):
            p = 1.0 / (1.0 + np.exp(-(offset + z[:, step] @ ws + bs)))
            g = (p - y) * balance
            ws -= RATE * (z[:, step].T @ g / len(y) + L2 * ws)
            bs -= RATE * float(g.mean())
        w[step], b = ws, b + bs
    return LearnedOrder(
        tuple(_r(v) for v in mean), tuple(_r(v) for v in scale), tuple(_r(v) for v in w), _r(b)
    )


def _r(value: float) -> float:
    return float(f"{float(value):.4g}")  # four significant digits: a small scale stays above 0


def train(data: Sequence[tuple[list[list[float]], list[float]]], without: Sequence[str] = ()) -> LearnedOrder:
    """The model over `data`'s rows; `without`: features held at 0, so they get no weight (the model
    as it would be without them: for a `LATER` feature, the earlier steps' weights are unchanged)."""
    x = np.array([row for rows_, _ in data for row in rows_], dtype=np.float64)
    y = np.array([label for _, labels in data for label in labels], dtype=np.float64)
    x[:, [FEATURES.index(name) for name in without]] = 0.0
    if not y.any() or y.all():
        raise ValueError("training needs candidates that hold an answer and candidates that do not")
    return fit(x, y)


def tune(
    asked: list[Asked],
    users: dict[str, UserMemories],
    candidates: int,
    evaluate: Evaluations | None = None,
) -> dict[str, Settings]:
    """For each conversation, the fusion's constants chosen on the other four, as `--cv` chooses them
    (coordinate descent from the untuned values over `crossval.GRID`, without the steps that ship
    off): the fusion each fold's model is trained and measured on, so that no choice saw the held-out
    conversation. `evaluate`: the evaluations `--cv`'s own tuning made over the same candidates."""
    grid = {name: values for name, values in GRID.items() if name not in STEPS}
    evaluate = evaluate or Evaluations(asked, users, candidates)
    folds = leave_one_out([a.conversation for a in asked])
    return {held: chosen_on(evaluate, training, UNTUNED, grid) for training, held in folds}


def run(
    asked: list[Asked],
    users: dict[str, UserMemories],
    candidates: int,
    settings: Settings | None = None,
    picks: Mapping[str, Settings] | None = None,
    without: Sequence[str] = (),
) -> dict[str, Any]:
    """Leave-one-conversation-out: on each held-out conversation, the learned order (trained on the
    other four) against the fused order it re-orders. The fusion's constants: `picks[held]` (each
    fold's own, `tune`) when given, else `settings` (the shipped constants) for every fold.
    `without`: also a model trained without those features on the same folds, and the order's
    paired gain over it (what those features add, held out)."""
    shipped = _plain(settings or Settings())
    reranker = Reranker(users, candidates)
    cache: dict[tuple[Settings, int], tuple[list[list[float]], list[float]]] = {}

    def data(fusion: Settings, wanted: Sequence[str]) -> list[tuple[list[list[float]], list[float]]]:
        for i, a in enumerate(asked):
            if a.conversation in wanted and (fusion, i) not in cache:
                cache[fusion, i] = rows(reranker, a, fusion)
        return [cache[fusion, i] for i, a in enumerate(asked) if a.conversation in wanted]

    groups = list(dict.fromkeys(a.conversation for a in asked))
    learned: list[Scored] = []
    fused: list[Scored] = []
    less: list[Scored] = []  # the model without `without`
    folds = []
    for training, held in leave_one_out(groups):
        fusion = _plain(picks[held]) if picks else shipped
        model = train(data(fusion, training))
        questions = [a for a in asked if a.conversation == held]
        mine = scored(questions, partial(reranker.rank, settings=_with(fusion, model)))
        theirs = scored(questions, partial(reranker.rank, settings=fusion))
        learned += mine
        fused += theirs
        fold = {
            "held_out": held,
            "learned": summary(mine, [held])["overall"],
            "fused": summary(theirs, [held])["overall"],
            "gain": paired_gain(mine, theirs),
            "weights": dict(zip(FEATURES, model.weights, strict=True)),
        }
        if without:
            smaller = train(data(fusion, training), without)
            lesser = scored(questions, partial(reranker.rank, settings=_with(fusion, smaller)))
            less += lesser
            fold["gain_over_without"] = paired_gain(mine, lesser)
        folds.append(fold)
    per = [[g] for g in groups]
    held_out = {
        "learned order": average([summary(learned, g) for g in per]),
        "fused order": average([summary(fused, g) for g in per]),
    }
    if without:
        held_out[f"order without {', '.join(without)}"] = average([summary(less, g) for g in per])
    report: dict[str, Any] = {
        "questions": len(asked),
        "fusion": "each fold's own constants (tuned on its four conversations)"
        if picks
        else "the shipped constants",
        "held_out": held_out,
        "gain": paired_gain(learned, fused),
        "folds": folds,
        "shipped": asdict(train(data(shipped, groups))),
    }
    if without:
        report["without"] = {"features": list(without), "gain": paired_gain(learned, less)}
    return report


def transfer(
    trained_on: tuple[list[Asked], dict[str, UserMemories], int],
    measured_on: tuple[list[Asked], dict[str, UserMemories], int],
    without: Sequence[str] = (),
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The model trained on every question of `trained_on` over the shipped constants (`settings`
    when given; trained on LoCoMo's cache, it is what ships), measured on the questions of
    `measured_on` (another data set's `--cv` cache: chats it never saw), against the fusion alone
    and, with `without`, against the model trained without those features; each gain paired, overall
    and per conversation."""
    fusion = _plain(settings or Settings())
    asked, users, candidates = trained_on
    reranker = Reranker(users, candidates)
    data = [rows(reranker, a, fusion) for a in asked]
    test_asked, test_users, test_candidates = measured_on
    test = Reranker(test_users, test_candidates)
    orders = {"learned order": train(data), "fused order": None}
    if without:
        orders[f"order without {', '.join(without)}"] = train(data, without)
    ranked = {
        name: scored(test_asked, partial(test.rank, settings=_with(fusion, model) if model else fusion))
        for name, model in orders.items()
    }
    groups = list(dict.fromkeys(a.conversation for a in test_asked))
    mine = ranked["learned order"]
    report: dict[str, Any] = {
        "questions": len(test_asked),
        "figures": {name: summary(these, groups) for name, these in ranked.items()},
        "gains": {},
    }
    for name, theirs in ranked.items():
        if name == "learned order":
            continue
        report["gains"][name] = {
            "overall": paired_gain(mine, theirs),
            "by_conversation": {g: paired_gain(*_only(g, mine, theirs)) for g in groups},
        }
    return report


def _only(group: str, *lists: list[Scored]) -> list[list[Scored]]:
    return [[s for s in these if s.group == group] for these in lists]


def _with(fusion: Settings, model: LearnedOrder) -> Settings:
    return replace(fusion, ranking=replace(fusion.ranking, learned=model))


def _plain(settings: Settings) -> Settings:
    """The fusion alone: `settings` with the learned order off."""
    return replace(settings, ranking=replace(settings.ranking, learned=None))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Leave-one-conversation-out, {report['questions']} questions; averages of the per-conversation "
        f"figures. The fusion under the order: {report['fusion']}.",
        "",
        *_table("order (held out)", report["held_out"]),
    ]
    mean, se = report["gain"]
    lines += ["", f"Held-out gain (mean of R@5 and R@10 per question): {mean:+.4f} ± {se:.4f}", ""]
    if "without" in report:
        names = ", ".join(report["without"]["features"])
        mean, se = report["without"]["gain"]
        by_fold = ", ".join(
            f"{f['held_out']} {f['gain_over_without'][0]:+.4f} ± {f['gain_over_without'][1]:.4f}"
            for f in report["folds"]
        )
        lines += [f"Held-out gain over the order without {names}: {mean:+.4f} ± {se:.4f} ({by_fold})", ""]
    lines += ["| category (held out) | learned R@5 / R@10 | fused R@5 / R@10 |", "|---|---|---|"]
    learned, fused = report["held_out"]["learned order"], report["held_out"]["fused order"]
    for category, figures in learned["by_category"].items():
        other = fused["by_category"][category]
        lines.append(
            f"| {category} | {figures['recall@5']} / {figures['recall@10']} | "
            f"{other['recall@5']} / {other['recall@10']} |"
        )
    lines += ["", "| held out | learned R@5 / R@10 | fused R@5 / R@10 | gain ± SE |", "|---|---|---|---|"]
    for fold in report["folds"]:
        a, b, (mean_, se_) = fold["learned"], fold["fused"], fold["gain"]
        lines.append(
            f"| {fold['held_out']} | {a['recall@5']} / {a['recall@10']} | {b['recall@5']} / {b['recall@10']} "
            f"| {mean_:+.4f} ± {se_:.4f} |"
        )
    lines += ["", "| feature | " + " | ".join(f["held_out"] for f in report["folds"]) + " | all five |"]
    lines.append("|---" * (len(report["folds"]) + 2) + "|")
    model = report["shipped"]
    shipped = LearnedOrder(
        tuple(model["mean"]), tuple(model["scale"]), tuple(model["weights"]), model["bias"]
    )
    for i, name in enumerate(FEATURES):
        values = [f"{f['weights'][name]:+.2f}" for f in report["folds"]]
        lines.append(f"| {name} | " + " | ".join(values) + f" | {shipped.weights[i]:+.2f} |")
    lines += ["", "The model trained on all five (ranking.LEARNED):", "", repr(shipped)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m openmemory_bench.learned")
    parser.add_argument("--cv-cache", type=Path, required=True)
    parser.add_argument(
        "--nested",
        action="store_true",
        help="each fold's fusion constants tuned on its four conversations too",
    )
    parser.add_argument(
        "--without",
        default="",
        help="features (comma-separated, as in ranking.FEATURES) to leave out of a second model, "
        "measured on the same questions: what they add",
    )
    parser.add_argument(
        "--test-cache",
        type=Path,
        help="instead of cross-validating: train on all of --cv-cache and measure on this cache's "
        "questions (another data set's `--cv --cv-cache` file)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    without = tuple(name for name in args.without.split(",") if name)
    if unknown := [name for name in without if name not in FEATURES]:
        parser.error(f"no feature named {', '.join(unknown)}; the features: {', '.join(FEATURES)}")

    load = partial(load_cache, parser)
    trained_on = load(args.cv_cache)
    if args.test_cache:
        report = transfer(trained_on, load(args.test_cache), without)
        print(transfer_markdown(report))
    else:
        asked, users, candidates = trained_on
        picks = tune(asked, users, candidates) if args.nested else None
        report = run(asked, users, candidates, picks=picks, without=without)
        print(markdown(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


def load_cache(
    parser: argparse.ArgumentParser, path: Path
) -> tuple[list[Asked], dict[str, UserMemories], int]:
    """A `--cv-cache` file's questions, memories and candidate count; the command stops, saying how
    to make one, if there is none."""
    from openmemory_bench.runner import _read_cache

    cached = _read_cache(path)
    if cached is None:
        parser.error(f"no cache at {path}: run `openmemory bench locomo --cv --cv-cache FILE` first")
    return cached["asked"], cached["users"], cached["candidates"]


def transfer_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Trained on every question of --cv-cache (the shipped constants), measured on the "
        f"{report['questions']} questions of --test-cache, all at once.",
        "",
        *_table("order", report["figures"]),
        "",
    ]
    for name, gain in report["gains"].items():
        mean, se = gain["overall"]
        by = ", ".join(f"{g} {m:+.4f} ± {e:.4f}" for g, (m, e) in gain["by_conversation"].items())
        lines.append(f"Gain of the learned order over the {name}: {mean:+.4f} ± {se:.4f} ({by})")
    return "\n".join(lines)


def _table(first: str, orders: dict[str, Any]) -> list[str]:
    """A markdown table of each order's overall figures."""
    lines = [f"| {first} | R@5 | R@10 | hit@10 | all@10 | MRR |", "|---|---|---|---|---|---|"]
    for name, figures in orders.items():
        o = figures["overall"]
        lines.append(
            f"| {name} | {o['recall@5']} | {o['recall@10']} | {o['hit@10']} | {o['all@10']} | {o['mrr']} |"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
