"""The near-duplicate threshold of consolidation, chosen by k-fold cross-validation.

Each pair of `services/ingest/tests/data/near_duplicates.json` goes through what ingest does to a
message (the local extractor: first person to "User", dates, entities, relations) and the product's
embedder; a pair is called a duplicate when its cosine is at least the threshold and
`consolidation.same_fact` finds nothing that tells the two apart. On each fold the threshold that
scores best on the other folds (F0.5: a wrong merge hides a fact, a missed one only leaves a
duplicate) is applied to the held-out fold; precision and recall are pooled over the held-out folds.
Each figure comes twice: with every rule, and without the content-word rule (`Features.content`
left empty), which is what the rules were before it.

`held_out` measures the shipped threshold and rules, without any choosing, on a second set written
before they were run on it (`near_duplicates_heldout.json`).
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_ingest.consolidation import SIMILARITY, Features, features, same_fact
from openmemory_ingest.extraction import LocalExtractor

DATA = Path(__file__).resolve().parents[3] / "services/ingest/tests/data/near_duplicates.json"
HELD_OUT = DATA.with_name("near_duplicates_heldout.json")
RULES = ("same_fact", "same_fact_without_words")
GRID = [round(0.60 + 0.01 * i, 2) for i in range(40)]  # 0.60 … 0.99
TOLD_AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


async def stored_form(extractor: LocalExtractor, text: str) -> tuple[str, Features]:
    """A message as ingest stores it (infer=True): its facts' text, entities and relations."""
    facts = await extractor.extract(text, True, TOLD_AT)
    stored = " ".join(f.text for f in facts) or text
    return stored, features(
        stored, [e for f in facts for e in f.entities], [r for f in facts for r in f.relations]
    )


def f_beta(tp: int, fp: int, fn: int, beta: float = 0.5) -> float:
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


def counts(
    rows: list[dict[str, Any]], threshold: float, rule: str = "same_fact"
) -> tuple[int, int, int, int]:
    tp = fp = fn = tn = 0
    for row in rows:
        called = row["cosine"] >= threshold and row[rule]
        if called and row["duplicate"]:
            tp += 1
        elif called:
            fp += 1
        elif row["duplicate"]:
            fn += 1
        else:
            tn += 1
    return tp, fp, fn, tn


def best_threshold(rows: list[dict[str, Any]], rule: str = "same_fact") -> float:
    """The grid value with the best F0.5 on these rows; ties to the higher (stricter) one."""
    return max(GRID, key=lambda t: (f_beta(*counts(rows, t, rule)[:3]), t))


async def scored_pairs(data: Path = DATA) -> list[dict[str, Any]]:
    pairs = json.loads(await asyncio.to_thread(data.read_text))["pairs"]
    extractor, embedder = LocalExtractor(), MiniLMEmbedder()
    rows = []
    for pair in pairs:
        (a, fa), (b, fb) = await stored_form(extractor, pair["a"]), await stored_form(extractor, pair["b"])
        va, vb = await embedder.embed([a, b])
        rows.append(
            {
                **pair,
                "stored_a": a,
                "stored_b": b,
                "cosine": sum(x * y for x, y in zip(va, vb, strict=True)),
                "same_fact": same_fact(fa, fb),
                "same_fact_without_words": same_fact(
                    replace(fa, content=frozenset()), replace(fb, content=frozenset())
                ),
            }
        )
    return rows


def _rates(tp: int, fp: int, fn: int, tn: int) -> dict[str, Any]:
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def _errors(rows: list[dict[str, Any]], threshold: float, rule: str) -> list[dict[str, Any]]:
    return [
        {k: r[k] for k in ("kind", "stored_a", "stored_b", "duplicate", rule)}
        | {"cosine": round(r["cosine"], 3)}
        for r in rows
        if (r["cosine"] >= threshold and r[rule]) != r["duplicate"]
    ]


def cross_validate(rows: list[dict[str, Any]], folds: int, seed: int, rule: str) -> dict[str, Any]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    tp = fp = fn = tn = 0
    chosen = []
    for k in range(folds):
        held = {order[i] for i in range(k, len(order), folds)}
        train = [r for i, r in enumerate(rows) if i not in held]
        threshold = best_threshold(train, rule)
        chosen.append(threshold)
        a, b, c_, d = counts([r for i, r in enumerate(rows) if i in held], threshold, rule)
        tp, fp, fn, tn = tp + a, fp + b, fn + c_, tn + d
    final = best_threshold(rows, rule)
    return {
        "fold_thresholds": chosen,
        "held_out": _rates(tp, fp, fn, tn),
        "threshold_on_all": final,
        "errors_at_threshold": _errors(rows, final, rule),
    }


async def run(folds: int = 5, seed: int = 7, data: Path = DATA) -> dict[str, Any]:
    rows = await scored_pairs(data)
    final = best_threshold(rows)
    cosine_only = counts([{**r, "same_fact": True} for r in rows], final)
    return {
        "pairs": len(rows),
        "duplicates": sum(r["duplicate"] for r in rows),
        "folds": folds,
        "rules": {rule: cross_validate(rows, folds, seed, rule) for rule in RULES},
        "cosine_only_at_threshold": dict(zip(("tp", "fp", "fn", "tn"), cosine_only, strict=True)),
    }


async def held_out(data: Path = HELD_OUT, threshold: float = SIMILARITY) -> dict[str, Any]:
    """The shipped threshold and rules on a set nothing was chosen on: one measurement."""
    rows = await scored_pairs(data)
    return {
        "pairs": len(rows),
        "duplicates": sum(r["duplicate"] for r in rows),
        "threshold": threshold,
        "rules": {
            rule: {"scores": _rates(*counts(rows, threshold, rule)), "errors": _errors(rows, threshold, rule)}
            for rule in RULES
        },
        "cosine_only": _rates(*counts([{**r, "same_fact": True} for r in rows], threshold)),
    }


def _line(name: str, scores: dict[str, Any]) -> str:
    precision, recall = scores["precision"], scores["recall"]
    shown = "n/a" if precision is None else f"{precision:.3f}"
    return (
        f"- {name}: precision {shown}, recall {recall:.3f} "
        f"(tp {scores['tp']}, fp {scores['fp']}, fn {scores['fn']}, tn {scores['tn']})"
    )


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Near-duplicate threshold: {report['folds']}-fold cross-validation on {report['pairs']} labelled "
        f"pairs ({report['duplicates']} duplicates)",
        f"- the cosine alone at the shipped rules' threshold: {report['cosine_only_at_threshold']}",
    ]
    for rule, found in report["rules"].items():
        per_fold = ", ".join(f"{t:.2f}" for t in found["fold_thresholds"])
        lines.append(f"{rule}: thresholds per fold {per_fold}; on all pairs {found['threshold_on_all']:.2f}")
        lines.append(_line("held out, pooled", found["held_out"]))
        for error in found["errors_at_threshold"]:
            lines.append(f"  - miss: {json.dumps(error)}")
    return "\n".join(lines)


def held_out_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Held-out pairs: {report['pairs']} ({report['duplicates']} duplicates) at the shipped "
        f"threshold {report['threshold']:.2f}",
        _line("the cosine alone", report["cosine_only"]),
    ]
    for rule, found in report["rules"].items():
        lines.append(_line(rule, found["scores"]))
        for error in found["errors"]:
            lines.append(f"  - miss: {json.dumps(error)}")
    return "\n".join(lines)
