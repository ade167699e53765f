"""The user's profile (`memory://profile`): a short summary built from their current memories —
who, where, work, preferences, the people around them.

Deterministic and offline, no model: it reads the relations extraction put on each memory ("User
LIVES_IN Lisbon", "User HAS_SISTER Anna", "Anna LIVES_IN Vienna") and a few fixed phrasings of a
memory's text ("User's name is …"). Only current memories count: active, and not superseded by a
newer one (a move, a new job). Newest first, so where two current memories disagree the newer
value leads. Every part is bounded: the memories read, the values per line, the lines per section,
the characters per line and in all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from openmemory_core import contracts as c

#: The newest current memories a profile reads (search lists them newest first).
MAX_MEMORIES = 1000
MAX_LINES_PER_SECTION = 8
MAX_VALUES_PER_LINE = 8
MAX_LINE_CHARS = 200
MAX_NOTES = 6
#: The whole profile (titles and lines); beyond it, lines are left out from the end.
MAX_CHARS = 4000

SECTIONS = ("Who", "Where", "Work", "Preferences", "People", "Also", "Notes")

#: A relation of the user -> the section it belongs in and how a line names it.
USER_RELATIONS: dict[str, tuple[str, str]] = {
    "FROM": ("Who", "From"),
    "BORN_IN": ("Who", "Born in"),
    "SPEAKS": ("Who", "Speaks"),
    "LIVES_IN": ("Where", "Lives in"),
    "GREW_UP_IN": ("Where", "Grew up in"),
    "WORKS_AS": ("Work", "Works as"),
    "WORKS_AT": ("Work", "Works at"),
    "STUDIES_AT": ("Work", "Studies at"),
    "LIKES": ("Preferences", "Likes"),
    "PREFERS": ("Preferences", "Prefers"),
    "DISLIKES": ("Preferences", "Dislikes"),
    "DIET": ("Preferences", "Diet"),
    "ALLERGIC_TO": ("Preferences", "Allergic to"),
    "MARRIED_TO": ("People", "Married to"),
    "HAS_PET": ("People", "Pet"),
}
#: Lines with these labels come first in their section, in this order; others as first met.
LABEL_ORDER = {
    label.casefold(): rank
    for rank, label in enumerate(
        ("Name", "Age", "From", "Born in", "Speaks", "Lives in", "Grew up in", "Works as", "Works at",
         "Studies at", "Diet", "Allergic to", "Likes", "Prefers", "Dislikes", "Married to")
    )
}  # fmt: skip
#: What a line says of someone close to the user: their own relations of these kinds.
PERSON_DETAILS = {"LIVES_IN": "lives in", "WORKS_AS": "works as", "WORKS_AT": "works at", "FROM": "from"}
MAX_PERSON_DETAILS = 2

#: Memories of these categories that gave no line of their own are kept as notes, newest first.
NOTE_CATEGORIES = frozenset({"personal", "preferences", "health", "work", "relationships", "education"})

_NAME = re.compile(
    r"^User(?:'s (?:full |first )?name is| is called| goes by| is named)\s+(?P<v>[^.,;!?\n]{1,80})",
    re.IGNORECASE,
)
_AGE = re.compile(r"^User is (?P<v>\d{1,3}) years? old\b", re.IGNORECASE)
_USER = "user"


@dataclass
class _Line:
    label: str
    values: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    sources: dict[str, None] = field(default_factory=dict)  # the memories of the values shown
    more: int = 0

    def add(self, value: str, memory_id: str) -> None:
        key = value.casefold()
        if key in self.keys:
            return
        self.keys.add(key)
        if len(self.values) < MAX_VALUES_PER_LINE:
            self.values.append(value)
            self.sources[memory_id] = None
        else:
            self.more += 1

    def text(self) -> str:
        said = ", ".join(self.values) + (f" and {self.more} more" if self.more else "")
        return _short(f"{self.label}: {said}")


class _Sections:
    """Lines per section, in the order they were first met."""

    def __init__(self) -> None:
        self.lines: dict[str, dict[str, _Line]] = {title: {} for title in SECTIONS}

    def add(self, section: str, label: str, value: str, memory_id: str) -> None:
        value = " ".join(value.split())
        if value:
            self.lines[section].setdefault(label.casefold(), _Line(label)).add(value, memory_id)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1].rstrip() + "…"


def _label(relation_type: str) -> str:
    """`HAS_BEST_FRIEND` -> "Best friend"; any type a model invented reads as words too."""
    words = relation_type.removeprefix("HAS_").replace("_", " ").strip().lower()
    return words[:1].upper() + words[1:] if words else relation_type


def current(memories: Iterable[c.Memory]) -> list[c.Memory]:
    """The memories that still hold, newest told first (ties by id, so the order is stable)."""
    kept = [m for m in memories if m.state == c.MemoryState.ACTIVE and not m.superseded_by]
    return sorted(kept, key=lambda m: (-m.created_at.timestamp(), m.id))


def build_profile(memories: Iterable[c.Memory]) -> c.ProfileResponse:
    """The profile of one user's memories (any order; every state may be given: only current
    ones are read)."""
    held = current(memories)
    sections = _Sections()
    gave: set[str] = set()  # memories that said something a line shows or could show
    people: dict[str, tuple[str, str, str]] = {}  # person key -> (label, name as said, memory id)
    about: dict[str, list[str]] = {}  # person key -> what their own relations say

    for memory in held:
        text = memory.text.strip()
        for pattern, label in ((_NAME, "Name"), (_AGE, "Age")):
            if match := pattern.match(text):
                sections.add("Who", label, match["v"].strip(), memory.id)
                gave.add(memory.id)
        for relation in memory.relations:
            subject, kind, value = relation.subject.strip(), relation.type.strip().upper(), relation.object
            if subject.casefold() == _USER:
                gave.add(memory.id)
                if kind in USER_RELATIONS:
                    section, label = USER_RELATIONS[kind]
                elif kind.startswith("HAS_"):
                    section, label = "People", _label(kind)
                else:
                    section, label = "Also", _label(kind)
                if section == "People":
                    people.setdefault(" ".join(value.split()).casefold(), (label, value, memory.id))
                else:
                    sections.add(section, label, value, memory.id)
            elif kind in PERSON_DETAILS:
                details = about.setdefault(" ".join(subject.split()).casefold(), [])
                detail = f"{PERSON_DETAILS[kind]} {' '.join(value.split())}"
                if detail not in details:
                    details.append(detail)

    _describe_people(sections, people, about)
    notes = [m for m in held if m.id not in gave and NOTE_CATEGORIES & set(m.categories)]
    for memory in notes[:MAX_NOTES]:
        note = _Line(_short(memory.text))
        note.sources[memory.id] = None
        sections.lines["Notes"][memory.id] = note
    return _bounded(sections, len(held), truncated=len(notes) > MAX_NOTES)


def _describe_people(
    sections: _Sections, people: dict[str, tuple[str, str, str]], about: dict[str, list[str]]
) -> None:
    """One line per kind of person (or pet) the user named, with a little of what is known of
    each: "Sister: Anna (lives in Vienna)"."""
    for key, (label, name, memory_id) in people.items():
        details = about.get(key, [])[:MAX_PERSON_DETAILS]
        name = " ".join(name.split())
        sections.add("People", label, f"{name} ({'; '.join(details)})" if details else name, memory_id)


def _bounded(sections: _Sections, read: int, truncated: bool) -> c.ProfileResponse:
    out: list[c.ProfileSection] = []
    used: dict[str, None] = {}
    size = 0
    for title in SECTIONS:
        lines = sorted(sections.lines[title].values(), key=lambda x: LABEL_ORDER.get(x.label.casefold(), 99))
        if not lines:
            continue
        truncated |= len(lines) > MAX_LINES_PER_SECTION
        texts = []
        for line in lines[:MAX_LINES_PER_SECTION]:
            text = line.text() if line.values else line.label
            truncated |= line.more > 0 or len(text) >= MAX_LINE_CHARS
            if size + len(title) + len(text) > MAX_CHARS:
                truncated = True
                break
            size += len(text)
            texts.append(text)
            used.update(line.sources)
        if texts:
            size += len(title)
            out.append(c.ProfileSection(title=title, lines=texts))
    return c.ProfileResponse(sections=out, memory_ids=list(used), read=read, truncated=truncated)
