"""Who said a conversation turn, where ingest and search must agree: "Caroline: I went to a support
group yesterday." is Caroline's. Ingest's extractor reads that turn's "I" as Caroline; search's
learned order weighs a turn said by the person a question names ("What books has Caroline read?")."""

from __future__ import annotations

import re

# A transcript line: a name of one or two capitalised words, a colon, then what was said.
_SPEAKER = re.compile(r"^([A-Z][a-z][\w'’-]{0,30}(?: [A-Z][\w'’-]{1,30})?): (?=\S)")
# Words that open a line like a name but label a note ("Note: I'm vegan" is the user's own words).
_LABELS = frozenset(
    """Note Notes Update Btw Fyi Reminder Todo Ps Edit Summary Context Re Fwd Question Answer Tip Warning
    Important Info Goal Goals Plan Idea Ideas Status Result Results Example Hint Remember User""".split()
)
_WORD = re.compile(r"[^\W\d_]+")


def speaker(text: str) -> tuple[str | None, str]:
    """("Caroline", "I went …") for a transcript line "Caroline: I went …"; (None, text) otherwise
    ("Note: I'm vegan" is a label, and the user's own words)."""
    match = _SPEAKER.match(text)
    if match is None or match.group(1).split()[0] in _LABELS:
        return None, text
    return match.group(1), text[match.end() :]


def words(text: str) -> frozenset[str]:
    """The words of `text`, lower-cased, for `named_in` ("Caroline's" holds "caroline")."""
    return frozenset(w.lower() for w in _WORD.findall(text))


def named_in(name: str, question_words: frozenset[str]) -> bool:
    """Whether every word of `name` is among `question_words` (`words` of a question): "Jon Snow" is
    named by "What did Jon Snow say?", not by "What did Jon say?"."""
    parts = words(name)
    return bool(parts) and parts <= question_words
