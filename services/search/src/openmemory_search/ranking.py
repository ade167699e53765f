"""Fusing ranked lists from several signals into one ranking (reciprocal-rank fusion, plus a little
of the dense and keyword scores themselves)."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from openmemory_core.contracts import Memory
from openmemory_core.text import speakers
from openmemory_core.text.dates import (
    EARLIEST,
    LATEST,
    ordered_period,
    season_period,
    tells_time,
    week_period,
)
from openmemory_core.text.keywords import terms


@dataclass
class Fused:
    memory: Memory
    score: float = 0.0
    signals: list[str] = field(default_factory=list)
    #: What fusion saw, for the learned order: each signal's best rank of this memory (from 0), the
    #: dense and keyword scores relative to their list's best (and the raw cosine), the lift.
    ranks: dict[str, int] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    lift: float = 0.0  # what the neighbour lift added
    logit: float = 0.0  # the learned order's, before the logistic (`reranked` reads it)


#: The learned order's inputs, in order (`features`).
FEATURES = (
    "fused", "position", "log_position", "cosine", "cosine_share", "keyword_share", "in_dense",
    "in_keyword", "rank_dense", "rank_keyword", "rank_time", "rank_recency", "rank_told_time",
    "neighbour_gain", "neighbour", "same_sitting", "length", "said_by_named", "said_by_other",
    "particular",
)  # fmt: skip
#: Ranks enter as 1 / (RANK_OFFSET + rank), a memory a signal did not rank as 0.
RANK_OFFSET = 4
#: Length enters as the share of this many characters, at most all of it.
LENGTH_CAP = 400


def features(ordered: list[Fused], question: str) -> list[list[float]]:
    """Each candidate's inputs to the learned order (`FEATURES`): `ordered`, the fused candidates in
    fusion's order with their final scores (`HybridRanker.finish`); `question`, what was asked.

    Who said it: a turn "Caroline: …" (`speakers.speaker`; a speaker says two candidates at least) is
    said by the person `question` names ("What books has Caroline read?": `said_by_named`; names are
    read as written, `speakers.names_in`), or by someone else while the question names a speaker of
    the candidates (`said_by_other`); where it names none of them, both are 0 for every candidate.
    And whether the turn names something particular (`speakers.names_particular`), its speakers aside."""
    top = max(ordered[0].score, 1e-9) if ordered else 1.0
    first = ordered[0].memory.when if ordered else None
    asked = speakers.names_in(question)
    turns = [speakers.speaker(entry.memory.text) for entry in ordered]
    said_by = [who for who, _ in turns]
    # every speaker's name, whoever says a candidate: "Thanks, Cleo!" names no one in particular
    people = speakers.people(who for who in said_by if who is not None)
    # a speaker says two candidates at least: a lone "Meeting: …" note is not someone talking
    talking = {s for s, n in Counter(said_by).items() if s is not None and n >= 2}
    said_by = [s if s in talking else None for s in said_by]
    named = {s for s in talking if speakers.named_in(s, asked)}
    rows = []
    for position, entry in enumerate(ordered):
        ranks, shares = entry.ranks, entry.shares
        rank = [1.0 / (RANK_OFFSET + ranks[s]) if s in ranks else 0.0
                for s in ("dense", "keyword", "time", "recency", "told_time")]  # fmt: skip
        near = (
            first is not None
            and abs((entry.memory.when - first).total_seconds()) < SITTING_GAP.total_seconds()
        )
        who = said_by[position]
        rows.append([
            entry.score / top, 1.0 / (1 + position), math.log1p(position),
            shares.get("cosine", 0.0), shares.get("dense", 0.0), shares.get("keyword", 0.0),
            float("dense" in shares), float("keyword" in shares), *rank,
            entry.lift / top, float("conversation" in entry.signals), float(near),
            min(len(entry.memory.text), LENGTH_CAP) / LENGTH_CAP,
            float(who in named), float(bool(named) and who is not None and who not in named),
            float(speakers.names_particular(turns[position][1], people)),
        ])  # fmt: skip
    return rows


@dataclass(frozen=True)
class LearnedOrder:
    """A linear model over `FEATURES`: score = logistic(bias + sum(weight * (x - mean) / scale)).
    Trained by `python -m openmemory_bench.learned` (logistic regression: does the candidate hold what
    the question's answer rests on), measured held out by conversation; bench/README.md, "The learned
    order"."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float = 0.0

    def __post_init__(self) -> None:
        n = len(FEATURES)
        if not len(self.mean) == len(self.scale) == len(self.weights) == n:
            raise ValueError(f"a learned order needs {n} means, scales and weights, one per feature")
        finite = all(math.isfinite(v) for v in (*self.mean, *self.weights, self.bias))
        if not finite or not all(math.isfinite(s) and s > 0 for s in self.scale):
            raise ValueError("a learned order's means, weights and bias are finite and its scales positive")

    def logits(self, rows: list[list[float]]) -> list[float]:
        """Each candidate's weighted sum, within [-60, 60]; a non-finite one is -60, so no input
        ranks on NaN."""
        found = []
        for row in rows:
            logit = self.bias + sum(
                w * (x - m) / s for x, m, s, w in zip(row, self.mean, self.scale, self.weights, strict=True)
            )
            found.append(max(-60.0, min(60.0, logit)) if math.isfinite(logit) else -60.0)
        return found

    def scores(self, rows: list[list[float]]) -> list[float]:
        """Each candidate's score in (0, 1): the logistic of its logit. Higher means likelier to be
        what the question asks for; it is not a probability (training weighed answers and the rest
        equally)."""
        return [_logistic(logit) for logit in self.logits(rows)]

    def reorder(self, ordered: list[Fused], question: str) -> list[Fused]:
        """`ordered` by the model's score, best first (fusion's order on a tie); each entry's score
        becomes the model's, which is what a client sees."""
        for entry, logit in zip(ordered, self.logits(features(ordered, question)), strict=True):
            entry.logit, entry.score = logit, _logistic(logit)
            entry.signals.append("learned")
        return sorted(ordered, key=lambda f: -f.score)


def _logistic(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


#: What scores (question, texts): `cross.CrossEncoder.scores`, one logit a text; None when it cannot
#: (the step is then left out, and the learned order stands).
Scorer = Callable[[str, list[str]], list[float] | None]


def reranked(ordered: list[Fused], question: str, cross: Scorer, top: int, weight: float) -> list[Fused]:
    """The cross-encoder step, after the learned order: its best `top` re-ordered by `weight` times
    the learned logit plus (1 - `weight`) times the cross-encoder's logit, each standardised over
    those `top` (mean 0, deviation 1), the learned order's place on a tie; the rest stay below, as
    they were. The best `top` keep their scores, in order, so the scores a client sees still fall:
    the first takes the highest of them (signal `rerank`)."""
    head, tail = ordered[:top], ordered[top:]
    if len(head) < 2:
        return ordered
    read = cross(question, [entry.memory.text for entry in head])
    if read is None:
        return ordered
    mixed = [
        weight * a + (1 - weight) * b
        for a, b in zip(_standard([e.logit for e in head]), _standard(read), strict=True)
    ]
    scores = sorted((entry.score for entry in head), reverse=True)
    head = [head[i] for i in sorted(range(len(head)), key=lambda i: -mixed[i])]
    for entry, score in zip(head, scores, strict=True):
        entry.score = score
        entry.signals.append("rerank")
    return head + tail


def _standard(values: list[float]) -> list[float]:
    """`values` less their mean, over their (population) deviation; all 0 when they are equal."""
    mean = sum(values) / len(values)
    deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / deviation if deviation > 1e-9 else 0.0 for v in values]


#: The shipped model: trained on all five LoCoMo dev conversations (`python -m openmemory_bench.learned`);
#: held out by conversation, nested, it gained +0.045 ± 0.007 over the fusion (bench/README.md, "The
#: learned order"). The last three weights were fitted with those before them held: who said it, then
#: whether the turn names something particular.
# fmt: off
LEARNED = LearnedOrder(
    mean=(
        0.1964, 0.05605, 3.548, 0.2539, 0.405, 0.1811, 0.5511, 0.5474, 0.03002, 0.02988, 0.002542,
        0.0005837, 0.002871, 0.03043, 0.1337, 0.07985, 0.3605, 0.673, 0.3089, 0.1192
    ),
    scale=(
        0.1849, 0.1219, 0.9241, 0.2385, 0.3764, 0.2387, 0.4974, 0.4977, 0.04496, 0.04497, 0.01665,
        0.008696, 0.02055, 0.08533, 0.3403, 0.2711, 0.2078, 0.4691, 0.462, 0.324
    ),
    weights=(
        0.6096, -0.1535, -0.06995, 0.03472, 0.1935, 0.682, 0.05986, -0.1577, 0.1185, -0.09508,
        -0.02565, -0.05925, -0.007647, -0.07252, 0.1795, 0.2636, 0.6038, 0.4252, -0.6091, 0.3517
    ),
    bias=-1.974,
)
# fmt: on


@dataclass(frozen=True)
class RankingParams:
    """Every constant of the fusion, with the shipped values. A search service gets one and passes it
    to its ranker; the bench's cross-validation (`openmemory bench locomo --cv`) builds others to
    re-rank cached candidates, so nothing global changes while it sweeps. Each shipped value and
    the held-out gain that justifies it: bench/README.md, "Tuning"."""

    # Shipped values: what most of the five leave-one-conversation-out folds chose on LoCoMo, where
    # that choice gained on the held-out conversations by more than one standard error; else the
    # signal off or the textbook value. The keyword weight stays 1.5, not the folds' 2.5, which did
    # no better held out and drowned the recency signal (bench/README.md, "Held-out figures").

    #: Reciprocal-rank fusion's k: small, so each signal's top hits count.
    rrf_k: int = 3
    #: Each signal's weight in the fusion: dense and keyword (by meaning and by words), graph (names
    #: in the question: off, no held-out gain where every turn names its speaker), time (dense search
    #: within a period the question names, "in July 2023"), recency (the newest of the best
    #: candidates first, for "currently": the untuned 1, which every fold kept) and told_time (below).
    dense: float = 1.0
    keyword: float = 1.5
    graph: float = 0.0
    time: float = 1.0
    recency: float = 1.0
    #: Ranks alone hide how far ahead a hit is: dense and keyword can also add weight x (the hit's
    #: score / the best score in its list), so a clear match gains on a close one (keyword: no gain).
    dense_strength: float = 0.1
    keyword_strength: float = 0.0
    #: The best few pass a share of their score to the memories said just before and after them.
    neighbour_top: int = 8
    neighbour_share: float = 0.4
    #: How many of the dense and of the keyword candidates compete on recency.
    recency_pool: int = 10
    #: For a question that asks for a time ("when did …", "what year …"): the dense and keyword
    #: candidates whose text tells a time ("yesterday", "last week", "in May"), as one more list.
    told_time: float = 2.0
    # The steps below are off: none gained on the held-out folds by more than one standard error
    # (bench/README.md, "Steps for questions that need several memories"); a weight turns one on.

    #: A question that needs two or more memories ("what do A and B have in common", "… and how
    #: many …", "… given her …", `decompose.decompose`): each part's dense and keyword lists.
    parts: float = 0.0
    #: Sittings: the candidates whose times (`Memory.when`) lie within `SITTING_GAP` of each other
    #: form a sitting; a sitting is as strong as its best few candidates, and one more list orders the
    #: candidates by their sitting's strength, then by their own score.
    sitting: float = 0.0
    #: Diversity: a hit whose words mostly repeat a better hit's loses this share of its score per
    #: unit of overlap (Jaccard of their terms), so ten hits are not ten near-copies.
    diversity: float = 0.0
    #: More ways a question names a time, each a list of what is about the question within it: a
    #: season ("in summer 2021"), a week ("the week of 3 May 2023"), before or after a date ("two
    #: weeks before 11 August 2023") and before or after an event ("after the roadtrip": the time of
    #: the memory that best matches the event).
    season: float = 0.0
    week: float = 0.0
    order: float = 0.0
    event: float = 0.0
    #: The learned order (`LearnedOrder`): the fused candidates re-ordered by a linear model over
    #: what fusion saw of each (its fused score and place, each signal's rank, the dense and keyword
    #: scores, the neighbour lift, its sitting, its length), who said it and whether it names something
    #: particular (a name, a title, a number). None (the default; `SHIPPED` has `LEARNED`): the fused
    #: order as it is.
    learned: LearnedOrder | None = None
    #: The learned order applies where at least this share of the fused candidates are conversation
    #: turns (kept verbatim, linked to the turn said before them: `Memory.previous`), the kind of
    #: memory it was trained on; over one-line facts it gained nothing and lost at the first place
    #: (bench/README.md, "The learned order"), so there the fused order stands.
    learned_turns: float = 0.5
    #: The cross-encoder step (`reranked`, `cross.CrossEncoder`): where the learned order ran, its
    #: best `rerank_top` re-ordered by `rerank_weight` times its logit plus the rest times the
    #: cross-encoder's, read from the question and each memory's text together. 0 (the default;
    #: `SHIPPED` has 20): off. (20, 0.5): what the nested leave-one-conversation-out folds chose
    #: most, kept by a rule written before a third blind set was run (bench/README.md).
    rerank_top: int = 0
    rerank_weight: float = 0.5

    @property
    def weights(self) -> dict[str, float]:
        return {"dense": self.dense, "keyword": self.keyword, "graph": self.graph, "time": self.time,
                "recency": self.recency, "told_time": self.told_time, "parts": self.parts,
                "season": self.season, "week": self.week, "order": self.order,
                "event": self.event}  # fmt: skip

    @property
    def periods(self) -> dict[str, float]:
        """The time lists beyond `time` and their weights (the ones on only are worth a search)."""
        return {name: w for name, w in (("season", self.season), ("week", self.week),
                ("order", self.order)) if w}  # fmt: skip

    @property
    def strength_weights(self) -> dict[str, float]:
        return {"dense": self.dense_strength, "keyword": self.keyword_strength}


#: What search runs: the constants above and the learned order (`LEARNED`). `RankingParams()` alone is
#: the fusion without it, as the bench's tuning starts (a model is trained for given constants).
SHIPPED = RankingParams(learned=LEARNED, rerank_top=20)


SUPERSEDED_FACTOR = 0.5
#: Memories whose times lie closer than this belong to the same sitting (`RankingParams.sitting`).
SITTING_GAP = timedelta(hours=1)
#: A sitting's strength: the sum of the scores of its best this many candidates.
SITTING_BEST = 3
#: The diversity step reorders this many times the limit of the best hits.
DIVERSITY_POOL = 3


class HybridRanker:
    """Reciprocal-rank fusion: each signal adds weight / (k + rank) for every memory it ranks; dense
    and keyword also add a small share of each hit's own score, relative to their best hit's.

    Then the best few pass a share of their score to the memories said just before and just after
    them in the same conversation (signal "conversation"): the question next to a found answer, the
    answer next to a found question.

    A memory whose fact a newer one replaced ("lives in Lisbon" after "moved to Berlin") stays in the
    results at half its score, and never above the memory that replaced it: the current fact first.
    """

    def __init__(self, params: RankingParams = SHIPPED) -> None:
        self.params = params
        self.weights = params.weights
        self.k = params.rrf_k
        self.strength_weights = params.strength_weights

    def scores(
        self, ranked: dict[str, list[Memory]], strengths: dict[str, list[float]] | None = None
    ) -> dict[str, Fused]:
        """`strengths`: for some signals, each ranked memory's own score (a cosine, a BM25 score),
        in the order of `ranked`."""
        fused: dict[str, Fused] = {}
        for key, memories in ranked.items():
            signal = key.partition(":")[0]  # "parts:0:dense": one of several lists of a signal
            weight = self.weights.get(signal, 1.0)
            for rank, memory in enumerate(memories):
                entry = fused.setdefault(memory.id, Fused(memory))
                entry.score += weight / (self.k + rank + 1)
                entry.ranks[signal] = min(rank, entry.ranks.get(signal, rank))
                if signal not in entry.signals:
                    entry.signals.append(signal)
        for signal, values in (strengths or {}).items():
            weight, best = self.strength_weights.get(signal, 0.0), max(values, default=0.0)
            for memory, value in zip(ranked[signal], values, strict=True):
                share = max(value, 0.0) / best if best > 0 else 0.0
                fused[memory.id].shares[signal] = share
                if signal == "dense":
                    fused[memory.id].shares["cosine"] = value
                if weight:
                    fused[memory.id].score += weight * share
        if self.params.sitting:
            for rank, entry in enumerate(by_sitting(list(fused.values()))):
                entry.score += self.params.sitting / (self.k + rank + 1)
                entry.signals.append("sitting")
        return fused

    def best(self, fused: dict[str, Fused]) -> list[Fused]:
        """The entries whose neighbours gain: the `neighbour_top` best."""
        return sorted(fused.values(), key=lambda f: -f.score)[: self.params.neighbour_top]

    def finish(
        self,
        fused: dict[str, Fused],
        best: list[Fused],
        said_before: list[Memory],
        limit: int,
        *,
        question: str,
        cross: Scorer | None = None,
    ) -> list[Fused]:
        """Spread from `best` (`self.best(fused)`) to their neighbours (`said_before`: the memories
        before the best ones that no signal ranked), mark superseded memories down, order, and cut
        at the limit. `question`: what was asked, for the learned order (`features`). `cross`: the
        cross-encoder, for the step after it (`RankingParams.rerank_top`; none, no such step). With
        it this is CPU-bound for tens of milliseconds: call it off the event loop."""
        gains: dict[str, float] = {}
        by_previous: dict[str, list[str]] = {}
        for entry in fused.values():
            if entry.memory.previous:
                by_previous.setdefault(entry.memory.previous, []).append(entry.memory.id)
        for memory in said_before:
            fused.setdefault(memory.id, Fused(memory))
        for top in best:
            share = self.params.neighbour_share * top.score
            for neighbour in [top.memory.previous, *by_previous.get(top.memory.id, [])]:
                if neighbour in fused:
                    gains[neighbour] = gains.get(neighbour, 0.0) + share
        for memory_id, gain in gains.items():
            fused[memory_id].score += gain
            fused[memory_id].lift = gain
            fused[memory_id].signals.append("conversation")
        for entry in fused.values():
            if entry.memory.superseded_by:
                entry.score *= SUPERSEDED_FACTOR
                entry.signals.append("superseded")
        ordered = sorted(fused.values(), key=lambda f: (-f.score, -f.memory.created_at.timestamp()))
        if self.params.learned is not None and _turn_share(ordered) >= self.params.learned_turns:
            ordered = self.params.learned.reorder(ordered, question)
            if cross is not None and self.params.rerank_top:
                ordered = reranked(
                    ordered, question, cross, self.params.rerank_top, self.params.rerank_weight
                )
        if self.params.diversity:
            ordered = diversified(ordered, self.params.diversity, DIVERSITY_POOL * limit)
        return _after_replacements(ordered)[:limit]

    def fuse(
        self,
        ranked: dict[str, list[Memory]],
        limit: int,
        strengths: dict[str, list[float]] | None = None,
        question: str = "",
    ) -> list[Fused]:
        """Fusion when every neighbour worth adding is among the ranked memories."""
        fused = self.scores(ranked, strengths)
        return self.finish(fused, self.best(fused), [], limit, question=question)


def _turn_share(entries: list[Fused]) -> float:
    """The share of `entries` that are linked conversation turns (`RankingParams.learned_turns`)."""
    return sum(1 for e in entries if e.memory.previous) / len(entries) if entries else 0.0


def telling_time(dense: list[Memory], keyword: list[Memory]) -> list[Memory]:
    """The candidates whose text says when something happened (`dates.tells_time`), each at the best
    rank it holds in either list (dense first on a tie): the `told_time` signal."""
    best: dict[str, tuple[int, int, Memory]] = {}
    for order, memories in enumerate((dense, keyword)):
        for rank, memory in enumerate(memories):
            if memory.id not in best or (rank, order) < best[memory.id][:2]:
                best[memory.id] = (rank, order, memory)
    ranked = sorted(best.values(), key=lambda entry: entry[:2])
    return [memory for _, _, memory in ranked if tells_time(memory.text)]


PERIODS: dict[str, Callable[[str, datetime], tuple[datetime, datetime] | None]] = {
    "season": season_period,
    "week": week_period,
    "order": lambda query, _now: ordered_period(query),
}


def named_periods(query: str, now: datetime, params: RankingParams) -> dict[str, tuple[datetime, datetime]]:
    """The periods a question names in the forms whose signal is on (`RankingParams.periods`)."""
    found = {name: PERIODS[name](query, now) for name in params.periods}
    return {name: period for name, period in found.items() if period is not None}


def around_event(side: str, pivot: datetime) -> tuple[datetime, datetime]:
    """Before or after the time of an event's memory (`dates.event_named`), that day included."""
    day = pivot.replace(hour=0, minute=0, second=0, microsecond=0)
    if side == "before":
        return EARLIEST, day + timedelta(days=1) - timedelta(seconds=1)
    return day, LATEST


def sittings(memories: list[Memory], gap: timedelta = SITTING_GAP) -> dict[str, int]:
    """Each memory's sitting (a number): memories in time order (`Memory.when`), a new sitting
    wherever two in a row lie more than `gap` apart. Any chat history has times; no client has to
    say which conversation a memory came from."""
    ordered = sorted(memories, key=lambda m: m.when)
    found: dict[str, int] = {}
    number = 0
    for before, memory in zip([None, *ordered], ordered, strict=False):
        if before is not None and memory.when - before.when > gap:
            number += 1
        found[memory.id] = number
    return found


def by_sitting(entries: list[Fused], best: int = SITTING_BEST) -> list[Fused]:
    """The candidates ordered by their sitting's strength (the sum of its `best` scores), then by their
    own score: the `sitting` list."""
    sitting = sittings([e.memory for e in entries])
    members: dict[int, list[float]] = {}
    for entry in entries:
        members.setdefault(sitting[entry.memory.id], []).append(entry.score)
    strength = {n: sum(sorted(scores, reverse=True)[:best]) for n, scores in members.items()}
    return sorted(entries, key=lambda e: (-strength[sitting[e.memory.id]], -e.score))


def _term_set(text: str) -> frozenset[str]:
    """A text's terms; cached for short texts (at most 8,192 texts of up to 2,000 characters)."""
    return _cached_terms(text) if len(text) <= 2000 else frozenset(terms(text))


@functools.lru_cache(maxsize=8192)
def _cached_terms(text: str) -> frozenset[str]:
    return frozenset(terms(text))


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def diversified(ordered: list[Fused], share: float, pool: int) -> list[Fused]:
    """The best `pool` of `ordered` (best first) reordered greedily: each next hit is the one whose
    score, less `share` of it per unit of its overlap with the most similar hit already taken (Jaccard
    of their terms), is highest; the rest follow unchanged. A near-copy of a better hit falls behind
    hits that add something."""
    head, tail = ordered[:pool], ordered[pool:]
    words = {id(e): _term_set(e.memory.text) for e in head}
    taken: list[Fused] = []
    similar = {id(e): 0.0 for e in head}  # each candidate's overlap with the closest hit taken
    while head:
        pick = max(head, key=lambda e: e.score * (1 - share * similar[id(e)]))
        head.remove(pick)
        taken.append(pick)
        for e in head:
            similar[id(e)] = max(similar[id(e)], _overlap(words[id(e)], words[id(pick)]))
    return taken + tail


def _after_replacements(ordered: list[Fused]) -> list[Fused]:
    """Move each superseded memory to just after the memory that replaced it, when both are ranked."""
    result = list(ordered)
    for entry in ordered:
        newer = entry.memory.superseded_by
        if not newer:
            continue  # (most memories: the list of ids below would make every search quadratic)
        ids = [f.memory.id for f in result]
        if newer in ids and ids.index(newer) > ids.index(entry.memory.id):
            replacement = result[ids.index(newer)]
            entry.score = min(entry.score, replacement.score)  # the scores a client sees keep the order
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
