"""Turning a message into memories. This is the simple local extractor, with no network.

It splits a message into sentence-sized facts and finds capitalised names as entities. The
`Extractor` protocol is what ingest depends on, so a smarter extractor can stand in its place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from openmemory_core.keywords import STOPWORDS

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


class Extractor(Protocol):
    async def extract(self, text: str, infer: bool) -> list[Fact]: ...


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


class SentenceExtractor:
    """The default local extractor: one memory per sentence, names as entities."""

    async def extract(self, text: str, infer: bool) -> list[Fact]:
        if not infer:
            verbatim = text.strip()
            return [Fact(verbatim, find_entities(verbatim))] if verbatim else []
        return [Fact(sentence, find_entities(sentence)) for sentence in split_facts(text)]
