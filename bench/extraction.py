"""Measure the local extractor: precision/recall on the hand-made table, and its output and speed
on every turn of a LoCoMo file.

    .venv/bin/python bench/extraction.py [--locomo ../shared/bench/locomo/locomo_dev.json] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openmemory_bench.retrieval import p95
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.extraction.evaluation import score_meaning, score_table

TABLE = Path(__file__).parent / "data" / "extraction_cases.json"
HELD_OUT = Path(__file__).parent / "data" / "extraction_heldout.json"
# Written before the extractor was run on it, by a session that had not read the rules.
MEANING = Path(__file__).parent / "data" / "extraction_eval_v2.json"
DEV = Path(__file__).parent / "data" / "extraction_dev.json"  # the rules are shaped on this one


def locomo_time(value: str) -> datetime:
    """LoCoMo's "1:56 pm on 8 May, 2023"."""
    return datetime.strptime(value.replace(",", ""), "%I:%M %p on %d %B %Y").replace(tzinfo=UTC)


async def on_locomo(path: Path) -> dict[str, Any]:
    extractor = LocalExtractor()
    per_turn_ms: list[float] = []
    entities = facts = relations = dated = turns = 0
    samples = json.loads(path.read_text())  # noqa: ASYNC240  (a benchmark, before any timing)
    for sample in samples:
        conversation = sample["conversation"]
        for key, session in conversation.items():
            if not key.startswith("session_") or not isinstance(session, list):
                continue
            at = locomo_time(conversation[f"{key}_date_time"])
            for turn in session:
                started = time.perf_counter()
                found = await extractor.extract(f"{turn['speaker']}: {turn['text']}", True, at)
                per_turn_ms.append(1000 * (time.perf_counter() - started))
                turns += 1
                facts += len(found)
                entities += sum(len(f.entities) for f in found)
                relations += sum(len(f.relations) for f in found)
                dated += any(f.refers_to for f in found)
    return {
        "turns": turns,
        "facts_per_turn": round(facts / turns, 3),
        "entities_per_turn": round(entities / turns, 3),
        "relations_per_turn": round(relations / turns, 3),
        "turns_with_a_resolved_date": dated,
        "ms_per_turn_p50": round(statistics.median(per_turn_ms), 3),
        "ms_per_turn_p95": round(p95(per_turn_ms) or 0.0, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--locomo", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--misses",
        action="store_true",
        help="list the cases that differ (table and dev set; never the eval set)",
    )
    args = parser.parse_args()
    report: dict[str, Any] = {}
    for name, path in (("table", TABLE), ("held_out", HELD_OUT)):
        scored = await score_table(LocalExtractor(), path)
        report[name] = scored.as_dict()
        print(f"\n{name} ({scored.cases} cases)\n| | precision | recall | F1 |\n|---|---|---|---|")
        for part in ("facts", "entities", "relations"):
            values = report[name][part]
            print(f"| {part} | {values['precision']} | {values['recall']} | {values['f1']} |")
        speed = report[name]["ms_per_case"]
        print(f"dates right: {scored.dates_right}/{scored.dates_total}; {speed} ms per case")
        if args.misses:
            for miss in scored.misses:
                print(json.dumps(miss))
    dev = await score_meaning(LocalExtractor(), DEV)
    report["dev"] = dev.as_dict()
    print(f"\ndev set, in sample: the rules are shaped on it ({dev.cases} cases):")
    print(json.dumps(report["dev"], indent=2))
    if args.misses:
        for miss in dev.misses:
            print(json.dumps(miss))
    meaning = await score_meaning(LocalExtractor(), MEANING)
    report["eval_v2"] = meaning.as_dict()
    print(f"\neval v2, written before the extractor ran on it, out of sample ({meaning.cases} cases):")
    print(json.dumps(report["eval_v2"], indent=2))  # its misses are not listed: it is for measuring
    if args.locomo:
        report["locomo"] = await on_locomo(args.locomo)
        print("\nLoCoMo turns:", json.dumps(report["locomo"]))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
