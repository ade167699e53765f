"""The cross-encoder step (`ranking.reranked`), measured against the learned order it follows.

`python -m openmemory_bench.crossenc --cv-cache FILE [--nested] [--shipped-pair]`, over the candidates
that `openmemory bench locomo --cv --cv-cache FILE` cached. Leave-one-conversation-out: in each fold
the learned order is trained on the other four conversations (as `learned` trains it), the step's
(K, w) is chosen from `TOPS` x `WEIGHTS` on those four (`--shipped-pair`: the shipped pair in every
fold), and the step is measured on the fifth against the learned order alone. `--nested`: each
fold's fusion constants chosen on its four as well.
`--test-cache FILE` (repeatable): the learned order trained on all of --cv-cache, the step at the
shipped (K, w), measured on another data set's cached questions.

The cross-encoder's scores are computed one pair at a time and kept per (question, text) in
`<cv-cache>.cross.pkl`, so a figure does not depend on what ran before it and a second run costs no
model time (`rerank.Remembered`). A text's score moves a little with the texts it runs beside (the
model's int8 activations are scaled per batch), so a figure here can differ slightly from the
search service's, which scores each search's K together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from openmemory_bench.crossval import Scored, average, leave_one_out, paired_gain, scored, summary
from openmemory_bench.learned import _only, _plain, _table, _with, load_cache, rows, train, tune
from openmemory_bench.rerank import Asked, Remembered, Reranker, Settings, UserMemories
from openmemory_search.ranking import SHIPPED

#: The grid (K, w) is chosen from.
TOPS = (10, 20, 30)
WEIGHTS = (0.0, 0.25, 0.5, 0.75)


def _at(settings: Settings, top: int, weight: float) -> Settings:
    return replace(settings, ranking=replace(settings.ranking, rerank_top=top, rerank_weight=weight))


def run(
    asked: list[Asked],
    users: dict[str, UserMemories],
    candidates: int,
    cross: Remembered,
    picks: dict[str, Settings] | None = None,
    settings: Settings | None = None,
    pair: tuple[int, float] | None = None,
) -> dict[str, Any]:
    """Each fold: the learned order trained on four conversations; (K, w) chosen on them (the best
    mean of R@5 and R@10), or `pair` for every fold; both measured on the fifth, against the learned
    order alone. The fusion's constants: `picks[held]` (each fold's own, `learned.tune`) when given,
    else `settings` (the shipped constants)."""
    reranker = Reranker(users, candidates, cross=cross)
    groups = list(dict.fromkeys(a.conversation for a in asked))
    stepped: list[Scored] = []
    alone: list[Scored] = []
    folds = []
    for training, held in leave_one_out(groups):
        fusion = _plain(picks[held]) if picks else _plain(settings or Settings())
        model = train([rows(reranker, a, fusion) for a in asked if a.conversation in training])
        learned = _with(fusion, model)

        def measured(
            questions: list[Asked], top: int, weight: float, learned: Settings = learned
        ) -> list[Scored]:
            return scored(questions, partial(reranker.rank, settings=_at(learned, top, weight)))

        choice = pair or _chosen(measured, [a for a in asked if a.conversation in training])
        cross.save()
        questions = [a for a in asked if a.conversation == held]
        mine, theirs = measured(questions, *choice), measured(questions, 0, 0.0)
        stepped += mine
        alone += theirs
        folds.append({"held_out": held, "chosen": list(choice), "gain": paired_gain(mine, theirs)})
    cross.save()
    per = [[g] for g in groups]
    return {
        "questions": len(asked),
        "fusion": "each fold's own constants" if picks else "the shipped constants",
        "held_out": {
            "with the cross-encoder step": average([summary(stepped, g) for g in per]),
            "the learned order alone": average([summary(alone, g) for g in per]),
        },
        "gain": paired_gain(stepped, alone),
        "folds": folds,
    }


def _chosen(
    measured: Callable[[list[Asked], int, float], list[Scored]], training: list[Asked]
) -> tuple[int, float]:
    """The pair of the grid whose step gains most over the learned order alone on `training` (the
    first on a tie)."""
    base = measured(training, 0, 0.0)
    return max(
        ((top, weight) for top in TOPS for weight in WEIGHTS),
        key=lambda each: paired_gain(measured(training, *each), base)[0],
    )


def transfer(
    trained_on: tuple[list[Asked], dict[str, UserMemories], int],
    measured_on: tuple[list[Asked], dict[str, UserMemories], int],
    cross: Remembered,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The learned order trained on all of `trained_on` (as it ships, over the shipped constants or
    `settings`), and the step at the shipped (K, w), on `measured_on`'s questions: each gain paired,
    overall and per conversation."""
    fusion = _plain(settings or Settings())
    asked, users, candidates = trained_on
    model = train([rows(Reranker(users, candidates), a, fusion) for a in asked])
    test_asked, test_users, test_candidates = measured_on
    test = Reranker(test_users, test_candidates, cross=cross)
    learned = _with(fusion, model)
    orders = {
        f"with the cross-encoder step ({SHIPPED.rerank_top}, {SHIPPED.rerank_weight})": _at(
            learned, SHIPPED.rerank_top, SHIPPED.rerank_weight
        ),
        "the learned order alone": _at(learned, 0, 0.0),
    }
    ranked = {name: scored(test_asked, partial(test.rank, settings=s)) for name, s in orders.items()}
    cross.save()
    mine, theirs = ranked.values()
    groups = list(dict.fromkeys(a.conversation for a in test_asked))
    return {
        "questions": len(test_asked),
        "figures": {name: summary(these, groups) for name, these in ranked.items()},
        "gain": paired_gain(mine, theirs),
        "by_conversation": {g: paired_gain(*_only(g, mine, theirs)) for g in groups},
    }


def markdown(report: dict[str, Any]) -> str:
    mean, se = report["gain"]
    lines = [
        f"Leave-one-conversation-out, {report['questions']} questions; averages of the per-conversation "
        f"figures. The fusion: {report['fusion']}.",
        "",
        *_table("held out", report["held_out"]),
        "",
        f"Held-out gain of the step (mean of R@5 and R@10 per question): {mean:+.4f} ± {se:.4f}",
        "",
        "| held out | (K, w) chosen on the other four | gain ± SE |",
        "|---|---|---|",
    ]
    for fold in report["folds"]:
        m, e = fold["gain"]
        lines.append(f"| {fold['held_out']} | {tuple(fold['chosen'])} | {m:+.4f} ± {e:.4f} |")
    step = report["held_out"]["with the cross-encoder step"]["by_category"]
    base = report["held_out"]["the learned order alone"]["by_category"]
    lines += ["", "| category (held out) | with the step R@5 / R@10 | alone R@5 / R@10 |", "|---|---|---|"]
    for category, figures in step.items():
        other = base[category]
        lines.append(
            f"| {category} | {figures['recall@5']} / {figures['recall@10']} | "
            f"{other['recall@5']} / {other['recall@10']} |"
        )
    return "\n".join(lines)


def transfer_markdown(name: str, report: dict[str, Any]) -> str:
    mean, se = report["gain"]
    by = ", ".join(f"{g} {m:+.4f} ± {e:.4f}" for g, (m, e) in report["by_conversation"].items())
    return "\n".join(
        [
            f"{name}: the learned order trained on all of --cv-cache, {report['questions']} questions.",
            "",
            *_table("order", report["figures"]),
            "",
            f"Gain of the step: {mean:+.4f} ± {se:.4f} ({by})",
        ]
    )


def pooled(gains: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The inverse-variance mean of several sets' gains, and its standard error."""
    weights = [1 / se**2 for _, se in gains]
    mean = sum(w * m for w, (m, _) in zip(weights, gains, strict=True)) / sum(weights)
    return round(mean, 4), round((1 / sum(weights)) ** 0.5, 4)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m openmemory_bench.crossenc")
    parser.add_argument("--cv-cache", type=Path, required=True)
    parser.add_argument("--nested", action="store_true", help="each fold's fusion constants tuned too")
    parser.add_argument(
        "--shipped-pair",
        action="store_true",
        help=f"every fold at the shipped pair ({SHIPPED.rerank_top}, {SHIPPED.rerank_weight}), none chosen",
    )
    parser.add_argument(
        "--test-cache",
        type=Path,
        action="append",
        default=[],
        help="instead of cross-validating: train on all of --cv-cache and measure the step at the "
        "shipped (K, w) on this cache's questions (repeatable; several are also pooled)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    load = partial(load_cache, parser)
    trained_on = load(args.cv_cache)
    out: dict[str, Any]
    if args.test_cache:
        out = {}
        for path in args.test_cache:
            cross = Remembered(path.with_name(path.name + ".cross.pkl"))
            out[str(path)] = transfer(trained_on, load(path), cross)
            print(transfer_markdown(path.name, out[str(path)]), "\n", flush=True)
        if len(out) > 1:
            mean, se = pooled([r["gain"] for r in out.values()])
            print(f"Pooled over the {len(out)} sets (inverse-variance): {mean:+.4f} ± {se:.4f}")
            out = {"sets": out, "pooled": [mean, se]}
    else:
        asked, users, candidates = trained_on
        picks = tune(asked, users, candidates) if args.nested else None
        cross = Remembered(args.cv_cache.with_name(args.cv_cache.name + ".cross.pkl"))
        pair = (SHIPPED.rerank_top, SHIPPED.rerank_weight) if args.shipped_pair else None
        out = run(asked, users, candidates, cross, picks, pair=pair)
        print(markdown(out))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
