"""`openmemory bench …`: the benchmarks, as subcommands of the product's own command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

from openmemory_bench.runner import markdown, run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="openmemory bench", description="OpenMemory benchmarks")
    sub = parser.add_subparsers(dest="bench", required=True)
    locomo = sub.add_parser("locomo", help="retrieval on LoCoMo through ingest and search")
    locomo.add_argument("--data", type=Path, required=True, help="a LoCoMo JSON file (e.g. locomo_dev.json)")
    locomo.add_argument("--out", type=Path, help="write the full report as JSON here")
    locomo.add_argument("--conversations", type=int, help="only the first N conversations")
    locomo.add_argument("--latency-samples", type=int, default=200, help="adds timed one at a time")
    locomo.add_argument(
        "--infer",
        action="store_true",
        help="every turn through the extractor (infer=True), speaker-attributed",
    )
    locomo.add_argument(
        "--engine", choices=["edge", "local"], default="edge", help="the embedded vector engine"
    )
    locomo.add_argument(
        "--cv",
        action="store_true",
        help="leave-one-conversation-out cross-validation of the ranking constants (bench/README.md)",
    )
    locomo.add_argument(
        "--cv-cache",
        type=Path,
        help="with --cv: cache the candidates in this file (outside the repository) and reuse it",
    )
    scale = sub.add_parser(
        "scale", help="search latency on a whole system (10 users, through ingest), in search and over MCP"
    )
    scale.add_argument("--sizes", default="10000", help="comma list of memory counts, e.g. 10000,100000")
    scale.add_argument("--queries", type=int, default=200, help="searches per size, each asked both ways")
    scale.add_argument("--engine", choices=["edge", "local"], default="edge")
    scale.add_argument("--out", type=Path)
    load = sub.add_parser("load", help="many MCP clients adding and searching at once, on a whole system")
    load.add_argument("--clients", type=int, default=50)
    load.add_argument("--seconds", type=float, default=60.0)
    load.add_argument("--out", type=Path)
    soak = sub.add_parser(
        "soak", help="mixed MCP load for minutes, ingest restarted; lost or duplicated writes"
    )
    soak.add_argument("--minutes", type=float, default=30.0)
    soak.add_argument("--clients", type=int, default=20)
    soak.add_argument("--restart-every", type=float, default=180.0, help="seconds between ingest restarts")
    soak.add_argument("--out", type=Path)
    cost = sub.add_parser("ingest-cost", help="CPU per memory of an ingest process, outside the model")
    cost.add_argument("--memories", type=int, default=3000)
    cost.add_argument("--users", type=int, default=5)
    cost.add_argument(
        "--model-threads", type=int, default=0, help="OPENMEMORY_MODEL_THREADS for the worker and the replay"
    )
    cost.add_argument("--out", type=Path)
    pull = sub.add_parser("pull-cost", help="CPU per command of pulling it: a request each, or one for many")
    pull.add_argument("--commands", type=int, default=3000)
    pull.add_argument("--rounds", type=int, default=2)
    pull.add_argument("--partitions", type=int, default=5, help="consumers taken from at once")
    pull.add_argument("--out", type=Path)
    keyword = sub.add_parser(
        "keyword-step", help="a search's keyword step on Qdrant Edge, with and without a write between"
    )
    keyword.add_argument("--sizes", default="10000,100000", help="comma list of memory counts")
    keyword.add_argument("--questions", type=int, default=300)
    keyword.add_argument("--out", type=Path)
    updates = sub.add_parser("updates", help="knowledge updates through the offline extractor (bench/data)")
    updates.add_argument("--data", type=Path, help="a knowledge-update set (default: the one in bench/data)")
    updates.add_argument("--misses", action="store_true", help="list what went wrong")
    updates.add_argument("--out", type=Path)
    facts = sub.add_parser("facts", help="retrieval on memories as MCP clients store them (bench/data)")
    facts.add_argument("--data", type=Path, help="a fact-retrieval set (default: the one in bench/data)")
    facts.add_argument("--out", type=Path)
    consolidate = sub.add_parser(
        "consolidate", help="consolidation on a synthetic history of one user, through a running system"
    )
    consolidate.add_argument("--memories", type=int, default=5000)
    consolidate.add_argument("--out", type=Path)
    near = sub.add_parser(
        "near-duplicates", help="the near-duplicate threshold by k-fold cross-validation (labelled pairs)"
    )
    near.add_argument("--folds", type=int, default=5)
    near.add_argument("--held-out", action="store_true", help="the shipped rules on the held-out pairs, once")
    near.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    if args.bench == "load":
        from openmemory_bench import load as load_bench

        report = asyncio.run(load_bench.run(args.clients, args.seconds))
        print(load_bench.markdown(report))
    elif args.bench == "soak":
        from openmemory_bench import soak as soak_bench

        report = asyncio.run(soak_bench.run(args.minutes, args.clients, args.restart_every))
        print(soak_bench.markdown(report))
    elif args.bench == "ingest-cost":
        from openmemory_bench import ingest_cost

        report = asyncio.run(ingest_cost.run(args.memories, args.users, model_threads=args.model_threads))
        print(ingest_cost.markdown(report))
    elif args.bench == "pull-cost":
        from openmemory_bench import pull_cost

        report = asyncio.run(pull_cost.run(args.commands, args.rounds, args.partitions))
        print(pull_cost.markdown(report))
    elif args.bench == "keyword-step":
        from openmemory_bench import keyword_step

        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        report = asyncio.run(keyword_step.run(sizes, args.questions))
        print(keyword_step.markdown(report))
    elif args.bench == "consolidate":
        from openmemory_bench import consolidation as consolidation_bench

        report = asyncio.run(consolidation_bench.run(args.memories))
        print(consolidation_bench.markdown(report))
    elif args.bench == "near-duplicates":
        from openmemory_bench import near_duplicates

        if args.held_out:
            report = asyncio.run(near_duplicates.held_out())
            print(near_duplicates.held_out_markdown(report))
        else:
            report = asyncio.run(near_duplicates.run(args.folds))
            print(near_duplicates.markdown(report))
    elif args.bench == "facts":
        from openmemory_bench import facts as facts_bench

        report = asyncio.run(facts_bench.run(args.data or facts_bench.DATA))
        print(facts_bench.markdown(report))
    elif args.bench == "updates":
        from openmemory_bench import updates as updates_bench

        report = asyncio.run(updates_bench.run(args.data or updates_bench.DATA))
        print(updates_bench.markdown(report))
        if args.misses:
            for miss in report["misses"]:
                print(json.dumps(miss))
    elif args.bench == "scale":
        from openmemory_bench import scale as scale_bench

        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
        report = asyncio.run(scale_bench.run(sizes, args.queries, args.engine))
    else:
        report = asyncio.run(
            run(
                args.data,
                args.conversations,
                args.latency_samples,
                args.engine,
                args.infer,
                args.cv,
                args.cv_cache,
            )
        )
        print(markdown(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0
