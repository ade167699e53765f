"""Splitting a question that needs two or more memories into parts that each need one.

"What do Melanie and Caroline have in common?" needs what is said about each of them: the parts are
"What do Melanie have in common?" and "What do Caroline have in common?". "What schools did John play
in and how many years was he with his team?" asks two things: each clause is a part. "Would Melanie
enjoy Vivaldi given her love of classical music?" rests on a condition: the condition is a part of its
own, with the question's names. Search ranks each part by meaning and by words, and fuses those lists
with the question's own (`ranking.RankingParams.parts`). The rules read only how the question is put
(names joined by "and", a second question word after "and", "given", "based on"), never what it is
about, so they hold on any chat history.
"""

from __future__ import annotations

import re

from openmemory_core.text.dates import MONTHS, WEEKDAYS
from openmemory_core.text.keywords import terms
from openmemory_search.names import find_entities

#: At most this many parts: each costs a dense and a keyword search.
MAX_PARTS = 3
#: A part needs at least this many terms (stemmed words other than stopwords) to be searched.
MIN_TERMS = 2

_CALENDAR = frozenset(MONTHS + WEEKDAYS)
_JOINER = r"\s*(?:,\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+|\s*&\s*)"
_CLAUSE = re.compile(
    r",?\s+(?:and|but)\s+(?=(?:what|how|when|where|which|who|why)\b)",
    re.I,
)
_CONDITION = re.compile(
    r"\s*,?\s+\b(?:given(?=\s+(?:that|the|a|an|his|her|their|my|your|its|how)\b)|based on|because of"
    r"|because|due to)\b\s+",
    re.I,
)


def _names_joined(query: str, names: list[str]) -> list[str]:
    """Each name of a coordination ("A and B", "A, B and C", "both A and B") in its own copy of the
    question; [] when the question holds no such run."""
    if len(names) < 2:
        return []
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    run = re.compile(rf"(?:\bboth\s+)?\b({alternatives})\b((?:{_JOINER}\b(?:{alternatives})\b)+)", re.I)
    m = run.search(query)
    if m is None:
        return []
    members = [m.group(1), *re.findall(rf"\b({alternatives})\b", m.group(2))]
    return [query[: m.start()] + member + query[m.end() :] for member in dict.fromkeys(members)]


def _with_names(part: str, names: list[str]) -> str:
    """A later part that lost the question's names gets them back ("her allergies" are Joanna's);
    not months, weekdays or abbreviations ("US"), which name no one."""
    missing = [
        n
        for n in names
        if n.casefold() not in part.casefold() and not n.isupper() and n.casefold() not in _CALENDAR
    ]
    return f"{' '.join(missing)} {part}".strip() if missing else part


def decompose(query: str) -> list[str]:
    """The parts of a question that needs more than one memory; [] for a question that is one part.
    Names joined by "and" first, then clauses joined by "and" + a question word, then a condition
    ("given …", "based on …")."""
    names = find_entities(query)
    parts = _names_joined(query, names)
    if not parts:
        clauses = [c for c in _CLAUSE.split(query) if c.strip()]
        if len(clauses) < 2:
            clauses = [c for c in _CONDITION.split(query, maxsplit=1) if c.strip()]
        first, *rest = [c.strip(" ,?") for c in clauses] or [""]
        parts = [first, *(_with_names(c, names) for c in rest)] if rest else []
    kept = [p for p in dict.fromkeys(parts) if len(set(terms(p))) >= MIN_TERMS]
    return kept[:MAX_PARTS] if len(kept) >= 2 else []
