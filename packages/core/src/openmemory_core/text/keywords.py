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

# Tuned on the LoCoMo dev split (bench/README.md): conversational memories vary in length, and a
# light length normalisation (B) with early saturation (K1) ranked best.
K1 = 0.9
B = 0.4
AVERAGE_LENGTH = 12.0  # terms in a typical memory; BM25's length normalisation needs a reference
CONTEXT_SHARE = 0.5  # tuned on the LoCoMo dev split (bench/README.md)


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


_STEMMER = snowballstemmer.stemmer("english")


# Words whose stem would join unrelated senses: "what do I do for a living" is about work, not
# about where someone lives.
_UNSTEMMED = frozenset({"living"})


@functools.lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """The Snowball (Porter 2) English stem: "painted", "painting" and "paints" are all "paint"."""
    return word if word in _UNSTEMMED else str(_STEMMER.stemWord(word))


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


def _saturated(text: str, share: float, weights: dict[int, float]) -> None:
    counts = Counter(terms(text))
    length = sum(counts.values())
    for term, tf in counts.items():
        score = tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / AVERAGE_LENGTH))
        index = term_index(term)
        weights[index] = weights.get(index, 0.0) + share * score


def document_vector(text: str, context: str | None = None) -> SparseVector:
    """The text's terms at full weight; the terms of its context (what was said just before it in
    the same conversation) at CONTEXT_SHARE, so an answer is found by its question's words too."""
    weights: dict[int, float] = {}
    _saturated(text, 1.0, weights)
    if context:
        _saturated(context, CONTEXT_SHARE, weights)
    return _merge(weights)


def idf(documents: int, frequency: int) -> float:
    """Inverse document frequency as Qdrant's IDF modifier computes it: ln(1 + (N - n + 0.5) / (n + 0.5))."""
    return math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))


def query_vector(text: str) -> SparseVector:
    weights: dict[int, float] = {}
    for term in set(terms(text)):
        weights[term_index(term)] = 1.0
    return _merge(weights)
