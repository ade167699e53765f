"""Measure the write guard's detector: precision and recall per kind on the corpora, and its speed.

    .venv/bin/python bench/secrets.py [--json]

Scored per text: a kind is a true positive in a text that should and does have it, a false positive
in one that does not, a false negative where it should and is missed. `secrets_corpus.json` is in
sample (written before the detector, which was then tuned on it); `secrets_heldout.json` was written
after the patterns were final and was not used to change them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from openmemory_core.text.secrets import KINDS, find

DATA = Path(__file__).resolve().parent.parent / "packages" / "core" / "tests" / "data"
CORPORA = {"in-sample": DATA / "secrets_corpus.json", "held-out": DATA / "secrets_heldout.json"}


def score(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-kind true/false positives and false negatives, with the texts that went wrong."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    wrong: list[dict[str, Any]] = []
    for case in cases:
        expected = set(case["kinds"])
        got = {f.kind for f in find(case["text"])}
        for kind in expected & got:
            tp[kind] += 1
        for kind in got - expected:
            fp[kind] += 1
        for kind in expected - got:
            fn[kind] += 1
        if got != expected:
            wrong.append({"text": case["text"][:120], "expected": sorted(expected), "got": sorted(got)})
    per_kind = {}
    for kind in KINDS:
        if tp[kind] + fp[kind] + fn[kind] == 0:
            continue
        per_kind[kind] = {
            "tp": tp[kind], "fp": fp[kind], "fn": fn[kind],
            "precision": tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else None,
            "recall": tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else None,
        }  # fmt: skip
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {
        "cases": len(cases),
        "clean_cases": sum(1 for c in cases if not c["kinds"]),
        "precision": total_tp / (total_tp + total_fp) if total_tp + total_fp else None,
        "recall": total_tp / (total_tp + total_fn) if total_tp + total_fn else None,
        "per_kind": per_kind,
        "wrong": wrong,
    }


def speed(cases: list[dict[str, Any]]) -> dict[str, float]:
    """Microseconds per KB: on the corpus texts joined into 20,000 characters (a memory's limit), and
    on hostile inputs of that size made to make a backtracking pattern slow."""
    corpus = "\n".join(c["text"] for c in cases)
    inputs = {
        "prose with secrets": (corpus * (20_000 // len(corpus) + 1))[:20_000],
        "one long token": "a" * 20_000,
        "digits and spaces": "1 " * 10_000,
        "prefix repeats": ("sk-" * 7000)[:20_000],
        "at signs": ("a@" * 10_000),
        "password words": ("password is " * 2000)[:20_000],
        "pem begins": ("-----BEGIN PRIVATE KEY-----" * 800)[:20_000],
        "plus digits": ("+1 234 " * 3000)[:20_000],
        "upper alnum": ("GB82" + "A" * 30 + " ") * 570,
    }
    out = {}
    for name, text in inputs.items():
        runs, started = 0, time.perf_counter()
        while runs < 5 or time.perf_counter() - started < 0.5:
            find(text)
            runs += 1
        seconds = (time.perf_counter() - started) / runs
        out[name] = seconds * 1e6 / (len(text.encode()) / 1024)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    for name, path in CORPORA.items():
        if path.exists():
            report[name] = score(json.loads(path.read_text())["cases"])
    report["us_per_kb"] = speed(json.loads(CORPORA["in-sample"].read_text())["cases"])
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for name, result in report.items():
        if name == "us_per_kb":
            continue
        print(f"\n{name}: {result['cases']} texts ({result['clean_cases']} with nothing to find), "
              f"precision {result['precision']:.3f}, recall {result['recall']:.3f}")  # fmt: skip
        print(f"  {'kind':<15} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>8}")
        for kind, k in result["per_kind"].items():
            p = "-" if k["precision"] is None else f"{k['precision']:.2f}"
            r = "-" if k["recall"] is None else f"{k['recall']:.2f}"
            print(f"  {kind:<15} {k['tp']:>4} {k['fp']:>4} {k['fn']:>4} {p:>10} {r:>8}")
        for w in result["wrong"]:
            print(f"  wrong: {w['text']!r}: expected {w['expected']}, got {w['got']}")
    print("\nspeed, µs per KB:")
    for name, value in report["us_per_kb"].items():
        print(f"  {name:<20} {value:8.1f}")


if __name__ == "__main__":
    main()
