"""Retrieval metrics over ranked turn ids: recall@k, hit@k, all@k, MRR, by category."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from openmemory_core.text.keywords import SparseVector, document_vector, idf, query_vector

KS = (5, 10)


def p95(values: list[float]) -> float | None:
    """The 95th percentile (nearest rank) of some timings; None when there are none."""
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)] if values else None


@dataclass
class Tally:
    """Sums of per-question scores, for one retriever and one slice of the questions."""

    questions: int = 0
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, ranked: list[str], evidence: tuple[str, ...]) -> None:
        self.questions += 1
        wanted = set(evidence)
        for k in KS:
            found = wanted & set(ranked[:k])
            self.sums[f"recall@{k}"] += len(found) / len(wanted)
        top10 = set(ranked[:10])
        self.sums["hit@10"] += bool(wanted & top10)
        self.sums["all@10"] += wanted <= top10
        first = next((i for i, turn in enumerate(ranked[:10]) if turn in wanted), None)
        self.sums["mrr"] += 0.0 if first is None else 1.0 / (first + 1)

    def means(self) -> dict[str, float]:
        n = max(self.questions, 1)
        names = [f"recall@{k}" for k in KS] + ["hit@10", "all@10", "mrr"]
        return {name: round(self.sums[name] / n, 4) for name in names} | {"questions": self.questions}


@dataclass
class Scoreboard:
    overall: Tally = field(default_factory=Tally)
    by_category: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))

    def add(self, category: str, ranked: list[str], evidence: tuple[str, ...]) -> None:
        self.overall.add(ranked, evidence)
        self.by_category[category].add(ranked, evidence)

    def report(self) -> dict[str, object]:
        return {
            "overall": self.overall.means(),
            "by_category": {name: tally.means() for name, tally in sorted(self.by_category.items())},
        }


class Bm25:
    """Plain BM25 over some texts, computed here and not by the product's index: the baseline stays
    BM25 of each text alone whatever the product adds to its keyword vectors. The same terms, term
    frequency saturation and IDF (`keywords.idf`) as the product with Qdrant's IDF modifier."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.vectors: dict[str, SparseVector] = {key: document_vector(text) for key, text in texts.items()}
        frequency: dict[int, int] = defaultdict(int)
        for vector in self.vectors.values():
            for index in vector.indices:
                frequency[index] += 1
        n = len(self.vectors)
        self.idf = {i: idf(n, f) for i, f in frequency.items()}

    def search(self, query: str, limit: int) -> list[str]:
        wanted = set(query_vector(query).indices)
        scored = []
        for key, vector in self.vectors.items():
            score = sum(
                self.idf[i] * v for i, v in zip(vector.indices, vector.values, strict=True) if i in wanted
            )
            if score > 0:
                scored.append((score, key))
        scored.sort(key=lambda pair: -pair[0])
        return [key for _, key in scored[:limit]]
