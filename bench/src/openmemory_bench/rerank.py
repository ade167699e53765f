"""LoCoMo questions re-ranked in this process from cached candidates, with any ranking and keyword
constants: what `openmemory bench locomo --cv` sweeps.

Ingest runs once, through the product. Then each question's candidates are read once from the stores
(every memory of its user by cosine, the graph's memories for the names it holds, the period it names
and whether it asks for the latest), and search's steps are repeated here with the product's own
pieces (`HybridRanker`, `keywords.document_vector`, per-user IDF as `stores.vectors.per_user` makes
it): the keyword list is scored here from the memories' texts, so BM25's constants, which ingest
bakes into stored vectors, can change without ingesting again. `agreement` checks the copy against
the search service's own answers.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from openmemory_bench.locomo import CATEGORIES, Conversation
from openmemory_bench.retrieval import Bm25
from openmemory_core import contracts as c
from openmemory_core.text.dates import asks_for_latest, asks_when, event_named, query_period
from openmemory_core.text.keywords import SHIPPED as KEYWORDS_SHIPPED
from openmemory_core.text.keywords import KeywordParams, document_vector, idf, query_vector
from openmemory_search.cross import CrossEncoder
from openmemory_search.decompose import decompose
from openmemory_search.names import find_entities
from openmemory_search.ranking import SHIPPED as RANKING_SHIPPED
from openmemory_search.ranking import (
    Fused,
    HybridRanker,
    RankingParams,
    Scorer,
    around_event,
    named_periods,
    telling_time,
)


@dataclass(frozen=True)
class Settings:
    """One point of the sweep: the fusion's constants and BM25's. Field names are unique across the
    two, so a constant is named by its field alone ("rrf_k", "k1")."""

    ranking: RankingParams = RANKING_SHIPPED
    keywords: KeywordParams = KEYWORDS_SHIPPED

    def _owner(self, name: str) -> str:
        for part in ("ranking", "keywords"):
            if name in {f.name for f in fields(getattr(self, part))}:
                return part
        raise KeyError(f"no constant named {name!r}")

    def value(self, name: str) -> Any:
        return getattr(getattr(self, self._owner(name)), name)

    def with_value(self, name: str, value: Any) -> Settings:
        part = self._owner(name)
        return replace(self, **{part: replace(getattr(self, part), **{name: value})})


@dataclass
class Asked:
    """One question and its cached candidates."""

    conversation: str
    user: str
    category: str
    evidence: tuple[str, ...]
    query: str
    dense: list[tuple[str, float]]  # every memory of the user, by cosine, best first
    graph: list[str]  # memory ids, as search's graph signal finds them
    period: tuple[float, float] | None  # the period the question names (timestamps)
    latest: bool  # it asks for the latest
    bm25: list[str]  # the bench's BM25 baseline: turn ids
    product: list[str]  # the search service's answer: turn ids
    vector: list[float] = field(default_factory=list)  # the question's embedding
    now: datetime | None = None  # when it was asked (relative periods: "last month")

    @property
    def asks_when(self) -> bool:
        return asks_when(self.query)


@dataclass
class UserMemories:
    memories: dict[str, c.Memory]
    turns: dict[str, list[str]]  # memory id -> the turns it holds
    vectors: dict[str, list[float]] = field(default_factory=dict)  # memory id -> its embedding


class KeywordIndex:
    """A user's memories scored as search's keyword signal scores them: the stored keyword vector
    (text, date, context at its share) under the user's own IDF."""

    def __init__(self, memories: list[c.Memory], params: KeywordParams) -> None:
        self.postings: dict[int, list[tuple[str, float]]] = defaultdict(list)
        for memory in memories:
            when = memory.when
            vector = document_vector(f"{memory.text} {when.day} {when:%B %Y}", memory.context, params)
            for index, value in zip(vector.indices, vector.values, strict=True):
                self.postings[index].append((memory.id, value))
        self.idf = {i: idf(len(memories), len(p)) for i, p in self.postings.items()}

    def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        scores: dict[str, float] = defaultdict(float)
        for index in query_vector(query).indices:
            for memory_id, value in self.postings.get(index, []):
                scores[memory_id] += self.idf[index] * value
        ranked = sorted(scores.items(), key=lambda pair: -pair[1])
        return [(m, s) for m, s in ranked if s > 0][:limit]


class Remembered:
    """The cross-encoder's scores (`RankingParams.rerank_top`), each (question, text) computed once,
    alone, and kept in `path` if one is given. Alone, because the model's int8 activations are scaled
    per batch: a score computed beside other texts would depend on which settings asked first. So
    a figure here is the same whatever ran before it, and can differ a little from the search
    service's, which scores a search's K together."""

    def __init__(self, path: Path | None, cross: CrossEncoder | None = None) -> None:
        self.path = path
        self.cross = cross or CrossEncoder()
        self.seen: dict[tuple[str, str], float] = {}
        if path is not None and path.exists():
            self.seen = pickle.loads(path.read_bytes())  # a file this module wrote
        self.new = 0

    def __call__(self, question: str, texts: list[str]) -> list[float]:
        for text in dict.fromkeys(texts):
            if (question, text) not in self.seen:
                (self.seen[question, text],) = self.cross.scores(question, [text])
                self.new += 1
        return [self.seen[question, t] for t in texts]

    def save(self) -> None:
        if self.path is not None and self.new:
            self.path.write_bytes(pickle.dumps(self.seen))
            self.new = 0


class Reranker:
    """Search's steps over cached candidates; keyword indexes are kept per user and BM25 setting.
    `embed`: the embedder, for the texts search embeds besides the question (a question's parts, the
    event it names); the cache holds every memory's embedding, so dense search is a dot product here."""

    def __init__(
        self,
        users: dict[str, UserMemories],
        candidates: int,
        limit: int = 10,
        embed: Callable[[list[str]], list[list[float]]] | None = None,
        cross: Scorer | None = None,
    ) -> None:
        self.users = users
        self.cross = cross  # the cross-encoder, for `RankingParams.rerank_top` (none: no such step)
        self.candidates = candidates
        self.limit = limit
        self.embed = embed
        self._indexes: dict[tuple[str, KeywordParams], KeywordIndex] = {}
        self._keyword: dict[tuple[int, KeywordParams], list[tuple[str, float]]] = {}
        self._matrices: dict[str, tuple[list[str], np.ndarray[Any, Any]]] = {}
        self._dense: dict[tuple[str, str], list[str]] = {}
        self._vectors: dict[str, list[float]] = {}
        self._parts: dict[str, list[str]] = {}
        self._part_keyword: dict[tuple[str, str, KeywordParams], list[str]] = {}
        self._within: dict[tuple[int, datetime, datetime], list[str]] = {}
        self._time: dict[tuple[int, float, float], list[str]] = {}

    def vector(self, text: str) -> list[float]:
        if text not in self._vectors:
            if self.embed is None:
                raise ValueError("this step embeds text: the re-ranker needs an embedder")
            (self._vectors[text],) = self.embed([text])
        return self._vectors[text]

    def dense(self, user: str, text: str) -> list[str]:
        """Every memory of `user` by cosine to `text`, best first (what dense search returns)."""
        key = (user, text)
        if key not in self._dense:
            if user not in self._matrices:
                vectors = self.users[user].vectors
                if not vectors:
                    raise ValueError("this --cv cache holds no memory embeddings: build it again")
                ids = list(vectors)
                self._matrices[user] = (ids, np.array([vectors[i] for i in ids], dtype=np.float32))
            ids, matrix = self._matrices[user]
            scores = matrix @ np.array(self.vector(text), dtype=np.float32)
            self._dense[key] = [ids[i] for i in np.argsort(-scores, kind="stable")]
        return self._dense[key]

    def parts(self, query: str) -> list[str]:
        if query not in self._parts:
            self._parts[query] = decompose(query)
        return self._parts[query]

    def more_lists(self, asked: Asked, settings: Settings) -> dict[str, list[c.Memory]]:
        """What search's `_more_lists` adds: parts, seasons, weeks, before/after a date or an event."""
        params, by_id = settings.ranking, self.users[asked.user].memories
        lists: dict[str, list[c.Memory]] = {}
        if params.parts:
            index = self.index(asked.user, settings.keywords)
            for i, part in enumerate(self.parts(asked.query)):
                lists[f"parts:{i}:dense"] = [
                    by_id[m] for m in self.dense(asked.user, part)[: self.candidates]
                ]
                key = (part, asked.user, settings.keywords)
                if key not in self._part_keyword:
                    self._part_keyword[key] = [m for m, _ in index.search(part, self.candidates)]
                lists[f"parts:{i}:keyword"] = [by_id[m] for m in self._part_keyword[key]]
        periods = named_periods(asked.query, asked.now or c.now(), params)
        if params.event and (event := event_named(asked.query)):
            periods["event"] = around_event(event[0], by_id[self.dense(asked.user, event[1])[0]].when)
        for name, (since, until) in periods.items():
            span = (id(asked), since, until)
            if span not in self._within:
                within = [m for m, _ in asked.dense if since <= by_id[m].when <= until]
                self._within[span] = within[: self.candidates]
            lists[name] = [by_id[m] for m in self._within[span]]
        return lists

    def index(self, user: str, params: KeywordParams) -> KeywordIndex:
        key = (user, params)
        if key not in self._indexes:
            self._indexes[key] = KeywordIndex(list(self.users[user].memories.values()), params)
        return self._indexes[key]

    def keyword(self, asked: Asked, params: KeywordParams) -> list[tuple[str, float]]:
        key = (id(asked), params)
        if key not in self._keyword:
            self._keyword[key] = self.index(asked.user, params).search(asked.query, self.candidates)
        return self._keyword[key]

    def rank(self, asked: Asked, settings: Settings) -> list[str]:
        """The turn ids search would answer with under `settings`, best first."""
        ordered = self.ordered(asked, settings, self.limit)
        return turns_of([f.memory.id for f in ordered], self.users[asked.user].turns)

    def ordered(self, asked: Asked, settings: Settings, limit: int) -> list[Fused]:
        """Search's fused memories under `settings`, best first, at most `limit`."""
        user = self.users[asked.user]
        by_id = user.memories
        dense = asked.dense[: self.candidates]
        keyword = self.keyword(asked, settings.keywords)
        ranked = {"dense": [by_id[m] for m, _ in dense], "keyword": [by_id[m] for m, _ in keyword]}
        if settings.ranking.graph:  # at weight 0 search does not ask the graph: no candidates from it
            ranked["graph"] = [by_id[m] for m in asked.graph if m in by_id]
        if asked.period is not None:
            since, until = asked.period
            key = (id(asked), since, until)
            if key not in self._time:
                within = [m for m, _ in asked.dense if since <= by_id[m].when.timestamp() <= until]
                self._time[key] = within[: self.candidates]
            ranked["time"] = [by_id[m] for m in self._time[key]]
        if asked.latest:
            n = settings.ranking.recency_pool
            pool = {m.id: m for m in ranked["dense"][:n] + ranked["keyword"][:n]}
            ranked["recency"] = sorted(pool.values(), key=lambda m: m.when.timestamp(), reverse=True)
        if settings.ranking.told_time and asked.asks_when:
            ranked["told_time"] = telling_time(ranked["dense"], ranked["keyword"])
        ranked |= self.more_lists(asked, settings)
        strengths = {"dense": [s for _, s in dense], "keyword": [s for _, s in keyword]}
        ranker = HybridRanker(settings.ranking)
        fused = ranker.scores(ranked, strengths)
        best = ranker.best(fused)
        said_before = [
            by_id[f.memory.previous]
            for f in best
            if f.memory.previous and f.memory.previous not in fused and f.memory.previous in by_id
        ]
        return ranker.finish(fused, best, said_before, limit, question=asked.query, cross=self.cross)


def turns_of(memory_ids: list[str], owner: dict[str, list[str]]) -> list[str]:
    ranked: list[str] = []
    for memory_id in memory_ids:
        ranked.extend(t for t in owner.get(memory_id, []) if t not in ranked)
    return ranked


def _period(query: str, now: datetime) -> tuple[float, float] | None:
    period = query_period(query, now)
    return None if period is None else (period[0].timestamp(), period[1].timestamp())


async def collect(
    stack: Any,
    conversations: list[Conversation],
    owner: dict[str, dict[str, list[str]]],
    product: dict[tuple[str, int], list[str]],
    candidates: int,
) -> tuple[list[Asked], dict[str, UserMemories]]:
    """Every question's candidates, read once from the stores ingest filled (`stack`: runner.Stack);
    `product`: the search service's answer to each (conversation, question number)."""
    asked: list[Asked] = []
    users: dict[str, UserMemories] = {}
    now = c.now()
    for conversation in conversations:
        user = f"locomo-{conversation.sample_id}"
        memories = await stack.vectors.list_memories(user, 1_000_000)
        embedded = await stack.embedder.embed([m.text for m in memories])  # as ingest embedded them
        vectors = {m.id: v for m, v in zip(memories, embedded, strict=True)}
        users[user] = UserMemories({m.id: m for m in memories}, owner[user], vectors)
        bm25 = Bm25({t.dia_id: f"{t.text} {t.at.day} {t.at:%B %Y}" for t in conversation.turns})
        for number, question in enumerate(conversation.questions):
            (vector,) = await stack.embedder.embed([question.text])
            dense = await stack.vectors.dense_search(user, vector, len(memories))
            names = find_entities(question.text)
            graph = await stack.graph.memories_mentioning(user, names, candidates) if names else []
            asked.append(
                Asked(
                    conversation.sample_id, user, CATEGORIES[question.category], question.evidence,
                    question.text, [(h.memory.id, h.score) for h in dense], graph,
                    _period(question.text, now), asks_for_latest(question.text),
                    bm25.search(question.text, 10), product[(conversation.sample_id, number)],
                    vector, now,
                )
            )  # fmt: skip
    return asked, users


def agreement(reranker: Reranker, asked: list[Asked], settings: Settings) -> dict[str, float]:
    """How closely the copy follows the search service: the share of questions whose top ten are the
    same turns in the same order, and whose top five are the same set."""
    same10 = same5 = 0
    for question in asked:
        mine = reranker.rank(question, settings)
        same10 += mine[:10] == question.product[:10]
        same5 += set(mine[:5]) == set(question.product[:5])
    n = max(len(asked), 1)
    return {"top10_identical": round(same10 / n, 3), "top5_same_set": round(same5 / n, 3)}
