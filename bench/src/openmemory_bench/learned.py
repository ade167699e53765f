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
from typing import Any

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
WHO = LATER[0]


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
    weights before it held, their score the offset. So who said it (`WHO`) changes nothing that the
    other features learn: a question that names no speaker has the same value of both for every
    candidate, and is ordered as by the first step. Whether a turn names something particular comes
    last, on top of both."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a feature constant in training says nothing
    z = (x - mean) / scale
    share = float(y.mean())
    balance = np.where(y > 0, 0.5 / share, 0.5 / (1 - share))
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


def train(data: Sequence[tuple[list[list[float]], list[float]]]) -> LearnedOrder:
    x = np.array([row for rows_, _ in data for row in rows_], dtype=np.float64)
    y = np.array([label for _, labels in data for label in labels], dtype=np.float64)
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
) -> dict[str, Any]:
    """Leave-one-conversation-out: on each held-out conversation, the learned order (trained on the
    other four) against the fused order it re-orders. The fusion's constants: `picks[held]` (each
    fold's own, `tune`) when given, else `settings` (the shipped constants) for every fold."""
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
    folds = []
    for training, held in leave_one_out(groups):
        fusion = _plain(picks[held]) if picks else shipped
        model = train(data(fusion, training))
        on = replace(fusion, ranking=replace(fusion.ranking, learned=model))
        questions = [a for a in asked if a.conversation == held]
        mine = scored(questions, partial(reranker.rank, settings=on))
        theirs = scored(questions, partial(reranker.rank, settings=fusion))
        learned += mine
        fused += theirs
        folds.append({
            "held_out": held,
            "learned": summary(mine, [held])["overall"],
            "fused": summary(theirs, [held])["overall"],
            "gain": paired_gain(mine, theirs),
            "weights": dict(zip(FEATURES, model.weights, strict=True)),
        })  # fmt: skip
    per = [[g] for g in groups]
    return {
        "questions": len(asked),
        "fusion": "each fold's own constants (tuned on its four conversations)"
        if picks
        else "the shipped constants",
        "held_out": {
            "learned order": average([summary(learned, g) for g in per]),
            "fused order": average([summary(fused, g) for g in per]),
        },
        "gain": paired_gain(learned, fused),
        "folds": folds,
        "shipped": asdict(train(data(shipped, groups))),
    }


def _plain(settings: Settings) -> Settings:
    """The fusion alone: `settings` with the learned order off."""
    return replace(settings, ranking=replace(settings.ranking, learned=None))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Leave-one-conversation-out, {report['questions']} questions; averages of the per-conversation "
        f"figures. The fusion under the order: {report['fusion']}.",
        "",
        "| order (held out) | R@5 | R@10 | hit@10 | all@10 | MRR |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in report["held_out"].items():
        o = figures["overall"]
        lines.append(
            f"| {name} | {o['recall@5']} | {o['recall@10']} | {o['hit@10']} | {o['all@10']} | {o['mrr']} |"
        )
    mean, se = report["gain"]
    lines += ["", f"Held-out gain (mean of R@5 and R@10 per question): {mean:+.4f} ± {se:.4f}", ""]
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

    from openmemory_bench.runner import _read_cache

    parser = argparse.ArgumentParser(prog="python -m openmemory_bench.learned")
    parser.add_argument("--cv-cache", type=Path, required=True)
    parser.add_argument(
        "--nested",
        action="store_true",
        help="each fold's fusion constants tuned on its four conversations too",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    cached = _read_cache(args.cv_cache)
    if cached is None:
        parser.error(f"no cache at {args.cv_cache}: run `openmemory bench locomo --cv --cv-cache FILE` first")
    asked, users, candidates = cached["asked"], cached["users"], cached["candidates"]
    picks = tune(asked, users, candidates) if args.nested else None
    report = run(asked, users, candidates, picks=picks)
    print(markdown(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
