"""Keyword (sparse) vectors for BM25-style matching.

A document's vector holds, per term, BM25's saturated term frequency; Qdrant's IDF modifier supplies
the inverse document frequency at query time, so together they score like BM25.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import snowballstemmer  # type: ignore[import-untyped]

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves i'm i've i'd i'll it's that's
    what's don't didn't doesn't""".split()
)


@dataclass(frozen=True)
class KeywordParams:
    """BM25's constants as ingest applies them to each memory's keyword vector (so a change to the
    shipped values changes stored vectors: `openmemory reembed`). The bench's cross-validation builds
    others to score cached memories in its own process. Shipped values and their held-out
    justification: bench/README.md, "Tuning"."""

    #: Term-frequency saturation: early, conversational memories rarely repeat a word on purpose.
    k1: float = 0.9
    #: Length normalisation: light, memories vary in length.
    b: float = 0.4
    #: Terms in a typical memory: the reference length that normalisation needs.
    average_length: float = 12.0
    #: The weight of the context's terms (what was said just before, in the same conversation).
    context_share: float = 0.5


SHIPPED = KeywordParams()


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """The Snowball (Porter 2) English stem: "painted", "painting" and "paints" are all "paint"."""
    return str(_STEMMER.stemWord(word))


def iter_terms(text: str) -> Iterator[str]:
    """`terms`, one at a time: a caller that stops early is spared stemming the rest (some 0.1 ms a
    word that is not yet cached, so 0.3 s for 20,000 characters of distinct short words)."""
    for match in _TOKEN.finditer(text.casefold()):
        token = match.group().replace("’", "'")
        if token in STOPWORDS:
            continue
        if token.endswith("'s"):
            token = token[:-2]
        token = stem(token)
        if token:
            yield token


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed word terms without stopwords or possessives."""
    return list(iter_terms(text))


def term_index(term: str) -> int:
    return zlib.crc32(term.encode()) & 0x7FFFFFFF


def _merge(weights: dict[int, float]) -> SparseVector:
    ordered = sorted(weights.items())
    return SparseVector([i for i, _ in ordered], [v for _, v in ordered])


def _saturated(text: str, share: float, weights: dict[int, float], params: KeywordParams) -> None:
    counts = Counter(terms(text))
    length = sum(counts.values())
    k1, b = params.k1, params.b
    for term, tf in counts.items():
        score = tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / params.average_length))
        index = term_index(term)
        weights[index] = weights.get(index, 0.0) + share * score


def document_vector(text: str, context: str | None = None, params: KeywordParams = SHIPPED) -> SparseVector:
    """The text's terms at full weight; the terms of its context (what was said just before it in
    the same conversation) at `params.context_share`, so an answer is found by its question's words
    too."""
    weights: dict[int, float] = {}
    _saturated(text, 1.0, weights, params)
    if context:
        _saturated(context, params.context_share, weights, params)
    return _merge(weights)


def idf(documents: int, frequency: int) -> float:
    """Inverse document frequency as Qdrant's IDF modifier computes it: ln(1 + (N - n + 0.5) / (n + 0.5))."""
    return math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))


def query_vector(text: str) -> SparseVector:
    weights: dict[int, float] = {}
    for term in set(terms(text)):
        weights[term_index(term)] = 1.0
    return _merge(weights)
