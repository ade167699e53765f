"""Names in a question: capitalised runs that are not common sentence openers, which search looks up
in the user's graph."""

from __future__ import annotations

import re

from openmemory_core.text.keywords import STOPWORDS

# The particle takes its own spaces: `\s+(?:of|…)?\s*` would split one run of spaces between two
# quantifiers in every way before failing (quadratic in the run); this matches the same names.
_NAME = re.compile(r"\b([A-Z][\w'’-]*(?:\s+(?:(?:of|de|van|von|da|del|la)\s*)?[A-Z][\w'’-]*)*)")
_NOT_NAMES = frozenset(
    """I I'm I've I'd I'll Im The A An My Our Your His Her Their This That These Those It Its We You
    He She They Me Us Them And But Or So If When While Yesterday Today Tomorrow Also Then There
    Here Please Thanks Thank Yes No Ok Okay Hi Hello Hey What Where Who Why How Which Monday
    Tuesday Wednesday Thursday Friday Saturday Sunday One Two Three Four Five Six Seven Eight Nine
    Ten""".split()
)
_POSSESSIVE = re.compile(r"['’]s$")


def find_entities(text: str) -> list[str]:
    """Capitalised names; a leading word counts only if it is not a common sentence opener."""
    found: dict[str, None] = {}  # ordered, and a repeat is found in constant time
    for match in _NAME.finditer(text):
        words = match.group(1).split()
        first = 0  # an index, not slices: a run of names can be thousands of words
        while first < len(words) and (
            words[first].strip("'’") in _NOT_NAMES or words[first].casefold() in STOPWORDS
        ):
            first += 1
        name = _POSSESSIVE.sub("", " ".join(words[first:])).strip(" -'’")
        if len(name) >= 2:
            found.setdefault(name)
    return list(found)
