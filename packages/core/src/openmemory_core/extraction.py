"""Turning a message into memories: the `Extractor` interface and the local extractor.

The local extractor (the default; no network) splits a message into sentence-sized facts, resolves
relative dates against the message's time, rewrites first person as facts about "User", and finds
typed entities, relations and categories with rules (`dates`, `facts`, `categories`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol

from openmemory_core.categories import categorize
from openmemory_core.contracts import Memory, Relation
from openmemory_core.dates import resolve_dates
from openmemory_core.facts import first_person_to_user, relations, typed_entities
from openmemory_core.keywords import STOPWORDS, terms

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_NAME = re.compile(r"\b([A-Z][\w'’-]*(?:\s+(?:of|de|van|von|da|del|la)?\s*[A-Z][\w'’-]*)*)")
_NOT_NAMES = frozenset(
    """I I'm I've I'd I'll Im The A An My Our Your His Her Their This That These Those It Its We You
    He She They Me Us Them And But Or So If When While Yesterday Today Tomorrow Also Then There
    Here Please Thanks Thank Yes No Ok Okay Hi Hello Hey What Where Who Why How Which Monday
    Tuesday Wednesday Thursday Friday Saturday Sunday One Two Three Four Five Six Seven Eight Nine
    Ten""".split()
)
_POSSESSIVE = re.compile(r"['’]s$")


@dataclass(frozen=True)
class Fact:
    text: str
    entities: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    entity_kinds: dict[str, str] = field(default_factory=dict)
    refers_to: date | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with one extracted fact, against the user's stored memories."""

    event: Literal["ADD", "UPDATE", "DELETE", "NONE"]
    fact: int
    target: str | None = None  # the stored memory's id, for UPDATE, DELETE and NONE
    text: str | None = None  # the merged text, for UPDATE


class Extractor(Protocol):
    #: Whether `decide` looks at stored memories (ingest fetches the similar ones only then).
    compares_with_stored: bool

    async def extract(self, text: str, infer: bool, at: datetime) -> list[Fact]:
        """The facts in `text`, a message sent at `at` (relative dates resolve against it)."""
        ...

    async def decide(self, facts: list[Fact], existing: list[Memory]) -> list[Decision]:
        """ADD / UPDATE / DELETE / NONE for each fact, given the most similar stored memories."""
        ...


def split_facts(text: str) -> list[str]:
    """Sentences and bullet lines, trimmed, without empties or repeats."""
    facts: list[str] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if not line:
            continue
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if len(sentence.strip(" .!?,;:-")) >= 2 and sentence not in facts:
                facts.append(sentence)
    return facts


def find_entities(text: str) -> list[str]:
    """Capitalised names; a leading word counts only if it is not a common sentence opener."""
    found: list[str] = []
    for match in _NAME.finditer(text):
        words = match.group(1).split()
        while words and (words[0].strip("'’") in _NOT_NAMES or words[0].casefold() in STOPWORDS):
            words = words[1:]
        name = _POSSESSIVE.sub("", " ".join(words)).strip(" -'’")
        if len(name) >= 2 and name not in found:
            found.append(name)
    return found


_SMALL_TALK = frozenset(
    "hi hello hey thanks thank ok okay yes yeah yep no nope lol haha bye cool great nice sure wow good "
    "morning evening night awesome".split()
)


def _is_small_talk(sentence: str) -> bool:
    return not [t for t in terms(sentence) if t not in _SMALL_TALK]


def _fact(text: str, at: datetime, rewrite: bool) -> Fact:
    resolved = resolve_dates(text, at)
    sentence = first_person_to_user(resolved.text) if rewrite else text
    kinds = {e.name: e.kind for e in typed_entities(sentence)}
    found = relations(sentence) if rewrite else []
    for relation in found:  # a relation's named ends are entities too ("Anna lives in …")
        if relation.subject != "User":
            kinds.setdefault(relation.subject, "person")
        if relation.object[:1].isupper():
            kinds.setdefault(relation.object, "other")
    return Fact(
        text=sentence,
        entities=list(kinds),
        entity_kinds=kinds,
        categories=categorize(sentence),
        relations=[Relation(subject=r.subject, type=r.type, object=r.object) for r in found],
        refers_to=resolved.refers_to,
    )


class LocalExtractor:
    """The default extractor: rules only, no network (see the module's docstring).

    Its decisions are all ADD: exact duplicates are skipped by content hash in ingest, and a fact
    that replaces another ("moved to Berlin") is handled by closing the relation it supersedes.
    """

    compares_with_stored = False

    async def decide(self, facts: list[Fact], existing: list[Memory]) -> list[Decision]:
        return [Decision("ADD", i) for i in range(len(facts))]

    async def extract(self, text: str, infer: bool, at: datetime) -> list[Fact]:
        if not infer:
            verbatim = text.strip()
            return [_fact(verbatim, at, rewrite=False)] if verbatim else []
        return [
            _fact(sentence, at, rewrite=True)
            for sentence in split_facts(text)
            if not sentence.rstrip().endswith("?") and not _is_small_talk(sentence)
        ]
