"""Change detection without a model: which stored memory a new fact replaces.

A fact that fills a functional relation ("User lives in Porto") replaces through the graph (see
`rules.FUNCTIONAL`). This module covers the rest, from the fact's words alone:

- the fact names what it replaces: "switched from VS Code to Neovim", "quit Acme", "used to play
  guitar but now …", "User doesn't drink coffee any more", "no longer vegetarian", "scrap the Japan
  trip": the stored memory that holds those words is replaced (`Change.old`);
- the fact (or another fact of its message) says that something changed ("now", "these days",
  "instead", "switched", …) without naming the old value: the stored memory closest to it in meaning,
  if it is close enough, is replaced (`Change.cue`);
- "User's favourite editor is Neovim" after "User's favourite editor is VS Code": one value per
  attribute (`slot_of`).

"also", "too", "another" … say that a fact adds to what was, so a cue alone replaces nothing then.
Written from general English, not from an evaluation set; the similarity threshold is chosen on the
development set (`bench/data/knowledge_updates_dev.json`, see bench/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from openmemory_core.text.keywords import terms
from openmemory_ingest.extraction.rules import NOT_NAMES

# Bounded pieces only (a phrase of at most four words), so every pattern is linear in the fact.
_WORD = r"[\w'’-]+"
_BOUNDARY = frozenset(
    """but and to for now because since so any anymore longer instead then these nowadays as
    which that who with at in on from lately recently though although cause""".split()
)
_DETERMINERS = re.compile(
    r"^(?:(?:the|a|an|my|our|some|User's|his|her|their|in|at|on|with|for|of|to|using|playing|doing)\s+)+",
    re.I,
)

_FROM_TO = re.compile(
    rf"\b(?:switch\w*|mov\w*|chang\w*|migrat\w*|upgrad\w*|went|gone|go|jump\w*|transferr?\w*|convert\w*|"
    rf"swapp?\w*)(?: {_WORD}){{0,2}}? from ({_WORD}(?: {_WORD}){{0,3}}?) (?:to|over to|for|into)\b",
    re.I,
)
_LEFT_BEHIND = re.compile(
    r"\b(?:quit|quitting|left|leaving|ditch(?:ed|ing)?|dropp(?:ed|ing)|scrap(?:ped|ping)?|"
    r"cancel(?:l?ed|l?ing)?|sold|selling|gave up|giving up|give up|got rid of|getting rid of|"
    r"replac(?:ed|ing)|swapp(?:ed|ing)|broke up with|split up with|split with|divorced|"
    r"moved out of|moved away from|moved on from|done with|finished with|instead of|rather than|"
    r"stopp(?:ed|ing)(?: \w+ing)?|no more|traded in|goodbye to|goodbye|moved off|migrated off|gone off)"
    rf" ({_WORD}(?: {_WORD}){{0,3}})",
    re.I,
)
_USED_TO = re.compile(
    rf"(?<!getting )(?<!get )(?<!got )(?<!be )\bused to {_WORD} ({_WORD}(?: {_WORD}){{0,4}})", re.I
)
_NO_LONGER = re.compile(
    rf"\b(?:no longer|not|never|\w+n't|\w+n’t) (?:{_WORD} )?({_WORD}(?: {_WORD}){{0,4}}?)"
    r" (?:any ?more|any longer)\b",
    re.I,
)
_NO_LONGER_LEAD = re.compile(rf"\bno longer {_WORD} ({_WORD}(?: {_WORD}){{0,4}})", re.I)
_IS_NO_LONGER = re.compile(rf"\b(?:is|are) no longer ({_WORD}(?: {_WORD}){{0,3}})", re.I)

# Words that say a fact changed ("switched", "no longer", "these days"): a strong cue replaces the
# closest memory in meaning above `threshold`, and speaks for the other facts of its message.
_CUE = re.compile(
    r"\b(?:nowadays|these days|any ?more|any longer|no longer|no more|instead|switch(?:ed|ing)?|"
    r"swapp(?:ed|ing)|chang(?:ed|ing)|used to|quit|gave up|stopp(?:ed|ing)|dropp(?:ed|ing)|"
    r"ditch(?:ed|ing)?|replac(?:ed|ing)|scrap(?:ped)?|cancel(?:l?ed)?|sold|broke up|split up|moved|"
    r"relocated|from now on|not anymore|traded|goodbye|replacement|lapsed?|laid off|fired|retired|"
    r"passed away|put \w+ down|fell through|rehomed|adopted by|moving on)\b",
    re.I,
)
# Words that often, not always, say so ("now", "new", "finally"): common in any chat, so a weak cue
# needs a closer memory (`weak_threshold`) and speaks only for its own fact.
_WEAK_CUE = re.compile(
    r"\b(?:now|since|went|became|become|turned|finally|new|latest|current(?:ly)?|again|off|promoted|"
    r"ended|move|update|left)\b",
    re.I,
)
_ADDITIVE = re.compile(
    r"\b(?:also|too|as well|another|additionally|in addition|both|second|more and more)\b", re.I
)
_SLOT = re.compile(
    rf"\bUser's ((?:favou?rite |current |new |main |usual |go-to |preferred )?{_WORD}(?: {_WORD})?)"
    r" (?:is|are) "
)
_SLOT_SOFT = frozenset({"current", "new", "main", "usual", "go-to", "preferred"})
# Words that name nothing by themselves: "that one", "the stuff", "User".
_VAGUE = frozenset(terms("user one ones thing things stuff it everything something anything way lot bit"))


@dataclass(frozen=True)
class Change:
    """What a fact says about an earlier one."""

    old: list[str] = field(default_factory=list)  # phrases naming the value it replaces
    cue: bool = False  # it says something changed (a strong cue, or it names the old value)
    weak: bool = False  # it may say so (a weak cue)
    additive: bool = False  # it says it adds ("also")


def _phrase(raw: str) -> str:
    words: list[str] = []
    for word in raw.split():
        bare = word.strip('.,;:!?"()').casefold()
        if bare in _BOUNDARY and words:
            break
        words.append(word.strip('.,;:!?"()'))
        if word[-1:] in ".,;:!?":
            break
    phrase = _DETERMINERS.sub("", " ".join(words)).strip(" '’-")
    return phrase if set(terms(phrase)) - _VAGUE else ""


def read_change(text: str) -> Change:
    """What `text` (a fact as stored: "User …") says about an earlier fact."""
    old: dict[str, None] = {}
    for pattern in (_FROM_TO, _LEFT_BEHIND, _USED_TO, _NO_LONGER, _NO_LONGER_LEAD, _IS_NO_LONGER):
        for match in pattern.finditer(text):
            phrase = _phrase(match.group(1))
            if phrase:
                old.setdefault(phrase)
    return Change(
        old=list(old),
        cue=bool(old) or _CUE.search(text) is not None,
        weak=_WEAK_CUE.search(text) is not None,
        additive=_ADDITIVE.search(text) is not None,
    )


def holds(text: str, phrase: str) -> bool:
    """Whether `text` holds at least half the words of `phrase`, as keywords (stemmed, so "guitars"
    holds "guitar"; "the PureGym membership" is held by "goes to PureGym")."""
    wanted = set(terms(phrase)) - _VAGUE
    return bool(wanted) and 2 * len(wanted & set(terms(text))) >= len(wanted)


def slot_of(text: str) -> tuple[str, str] | None:
    """("favourite editor", "neovim") for "User's favourite editor is Neovim."."""
    match = _SLOT.search(text)
    if match is None:
        return None
    name = " ".join(w for w in match.group(1).casefold().split() if w not in _SLOT_SOFT)
    value = " ".join(terms(text[match.end() :]))
    return (name, value) if name and value else None


@dataclass(frozen=True)
class Candidate:
    """A stored memory that a new fact may replace, and how close it is in meaning (the dense
    cosine; 0.0 when only its keywords found it)."""

    memory_id: str
    text: str
    similarity: float


def may_replace(text: str) -> bool:
    """Whether the fact `text` can replace anything: it names an old value, says something changed,
    or sets an attribute (most facts do none of these, and need no look at the stored ones)."""
    return any(p.search(text) is not None for p in (_CUE, _WEAK_CUE, _SLOT))


def says_change(text: str) -> bool:
    """Whether the fact `text` says, with a strong cue, that something changed (for its message)."""
    return _CUE.search(text) is not None


def subjects(text: str) -> set[str]:
    """Whom a fact is about, from its first words: "User", a name ("Caroline went …"), or both
    ("Lena and User split up"); empty when it does not say ("scrap the Japan trip")."""
    found: set[str] = set()
    for word in text.split()[:4]:
        bare = word.strip('.,;:!?"()').removesuffix("'s").removesuffix("’s")
        if bare == "User" or (bare[:1].isupper() and bare not in NOT_NAMES and bare.isalpha()):
            found.add(bare)
    return found


def _same_subject(text: str, other: str) -> bool:
    mine, theirs = subjects(text), subjects(other)
    return not mine or not theirs or bool(mine & theirs)


def replaced(
    text: str,
    candidates: list[Candidate],
    threshold: float,
    message_cued: bool = False,
    weak_threshold: float = 1.0,
    message_threshold: float = 1.0,
) -> str | None:
    """The id of the stored memory that the fact `text` replaces, if any (see the module's
    docstring). `candidates` are the user's current memories closest to the fact; `message_cued`:
    another fact of the same message says that something changed. Only a memory about the same
    subject (`subjects`) is replaced: "Caroline moved" never replaces what Melanie said."""
    change = read_change(text)
    by_closeness = sorted((c for c in candidates if _same_subject(text, c.text)), key=lambda c: -c.similarity)
    if change.old:
        for candidate in by_closeness:
            if any(holds(candidate.text, phrase) for phrase in change.old):
                return candidate.memory_id
    slot = slot_of(text)
    if slot is not None:
        for candidate in by_closeness:
            other = slot_of(candidate.text)
            if other is not None and other[0] == slot[0] and other[1] != slot[1]:
                return candidate.memory_id
    if change.additive:
        return None
    # A fact with no change word of its own, in a message whose other fact has one ("I moved to
    # Lisbon. I am allergic to peanuts."), needs a closer memory than the fact that says it changed.
    needed = (
        threshold
        if change.cue
        else message_threshold
        if message_cued
        else weak_threshold
        if change.weak
        else None
    )
    if needed is not None and by_closeness and by_closeness[0].similarity >= needed:
        return by_closeness[0].memory_id
    return None
