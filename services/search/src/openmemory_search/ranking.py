"""Fusing ranked lists from several signals into one ranking (reciprocal-rank fusion, plus a little
of the dense and keyword scores themselves)."""

from __future__ import annotations

from dataclasses import dataclass, field

from openmemory_core.contracts import Memory

# Tuned on the LoCoMo dev split (bench/README.md): a small k lets each signal's top hits count, and
# keywords carry more than meaning for conversational facts; names in the graph add a little; a
# period the question names ("in July 2023") and a question about the latest add their own lists;
# the five best lift their conversation neighbours by a fifth of their score.
RRF_K = 5
WEIGHTS = {"dense": 1.0, "keyword": 1.5, "graph": 0.25, "time": 1.0, "recency": 1.0}
# Ranks alone hide how far ahead a hit is: a memory whose keyword score is twice the runner-up's counts
# the same as one a hair ahead. Each of these signals also adds weight x (its score / the best score
# in its list), so a clear match gains on a close one (LoCoMo dev: R@5 +0.011, R@10 +0.009).
STRENGTH_WEIGHTS = {"dense": 0.1, "keyword": 0.2}


@dataclass
class Fused:
    memory: Memory
    score: float = 0.0
    signals: list[str] = field(default_factory=list)


SUPERSEDED_FACTOR = 0.5
NEIGHBOUR_TOP = 5
NEIGHBOUR_SHARE = 0.2


class HybridRanker:
    """Reciprocal-rank fusion: each signal adds weight / (k + rank) for every memory it ranks; dense
    and keyword also add a small share of each hit's own score, relative to their best hit's.

    Then the best few pass a share of their score to the memories said just before and just after
    them in the same conversation (signal "conversation"): the question next to a found answer, the
    answer next to a found question.

    A memory whose fact a newer one replaced ("lives in Lisbon" after "moved to Berlin") stays in the
    results at half its score, and never above the memory that replaced it: the current fact first.
    """

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        k: int = RRF_K,
        strength_weights: dict[str, float] | None = None,
    ) -> None:
        self.weights = weights or {}
        self.k = k
        self.strength_weights = STRENGTH_WEIGHTS if strength_weights is None else strength_weights

    def scores(
        self, ranked: dict[str, list[Memory]], strengths: dict[str, list[float]] | None = None
    ) -> dict[str, Fused]:
        """`strengths`: for some signals, each ranked memory's own score (a cosine, a BM25 score),
        in the order of `ranked`."""
        fused: dict[str, Fused] = {}
        for signal, memories in ranked.items():
            weight = self.weights.get(signal, 1.0)
            for rank, memory in enumerate(memories):
                entry = fused.setdefault(memory.id, Fused(memory))
                entry.score += weight / (self.k + rank + 1)
                entry.signals.append(signal)
        for signal, values in (strengths or {}).items():
            weight, best = self.strength_weights.get(signal, 0.0), max(values, default=0.0)
            if weight and best > 0:
                for memory, value in zip(ranked[signal], values, strict=True):
                    fused[memory.id].score += weight * max(value, 0.0) / best
        return fused

    @staticmethod
    def best(fused: dict[str, Fused]) -> list[Fused]:
        """The entries whose neighbours gain: the NEIGHBOUR_TOP best."""
        return sorted(fused.values(), key=lambda f: -f.score)[:NEIGHBOUR_TOP]

    def finish(
        self, fused: dict[str, Fused], best: list[Fused], said_before: list[Memory], limit: int
    ) -> list[Fused]:
        """Spread from `best` (`self.best(fused)`) to their neighbours (`said_before`: the memories
        before the best ones that no signal ranked), mark superseded memories down, order, and cut
        at the limit."""
        gains: dict[str, float] = {}
        by_previous: dict[str, list[str]] = {}
        for entry in fused.values():
            if entry.memory.previous:
                by_previous.setdefault(entry.memory.previous, []).append(entry.memory.id)
        for memory in said_before:
            fused.setdefault(memory.id, Fused(memory))
        for top in best:
            share = NEIGHBOUR_SHARE * top.score
            for neighbour in [top.memory.previous, *by_previous.get(top.memory.id, [])]:
                if neighbour in fused:
                    gains[neighbour] = gains.get(neighbour, 0.0) + share
        for memory_id, gain in gains.items():
            fused[memory_id].score += gain
            fused[memory_id].signals.append("conversation")
        for entry in fused.values():
            if entry.memory.superseded_by:
                entry.score *= SUPERSEDED_FACTOR
                entry.signals.append("superseded")
        ordered = sorted(fused.values(), key=lambda f: (-f.score, -f.memory.created_at.timestamp()))
        return _after_replacements(ordered)[:limit]

    def fuse(
        self, ranked: dict[str, list[Memory]], limit: int, strengths: dict[str, list[float]] | None = None
    ) -> list[Fused]:
        """Fusion when every neighbour worth adding is among the ranked memories."""
        fused = self.scores(ranked, strengths)
        return self.finish(fused, self.best(fused), [], limit)


def _after_replacements(ordered: list[Fused]) -> list[Fused]:
    """Move each superseded memory to just after the memory that replaced it, when both are ranked."""
    result = list(ordered)
    for entry in ordered:
        newer = entry.memory.superseded_by
        ids = [f.memory.id for f in result]
        if newer in ids and ids.index(newer) > ids.index(entry.memory.id):
            result.remove(entry)
            result.insert(ids.index(newer), entry)  # the index of `newer` once `entry` is gone, plus one
    return result


def with_replacements(ordered: list[Fused], replacements: dict[str, Memory], limit: int) -> list[Fused]:
    """The current fact first, whatever the query: each superseded memory in `ordered` whose
    replacement no signal ranked gets it (from `replacements`, by id) just above itself, at its score
    ("where do I live?" finds "lives in Lisbon" by its words, and "settled in Porto" comes with it)."""
    present = {f.memory.id for f in ordered}
    result: list[Fused] = []
    for entry in ordered:
        newer = replacements.get(entry.memory.superseded_by or "")
        if newer is not None and newer.id not in present:
            present.add(newer.id)
            result.append(Fused(newer, entry.score, ["replaces"]))
        result.append(entry)
    return result[:limit]
