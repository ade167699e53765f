"""Who said a conversation turn, where ingest and search must agree: "Caroline: I went to a support
group yesterday." is Caroline's. Ingest's extractor reads that turn's "I" as Caroline; search's
learned order weighs a turn said by the person a question names ("What books has Caroline read?")."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from openmemory_core.text.keywords import STOPWORDS

# A transcript line: a name of one or two words, each starting with a letter, a colon, then what was
# said. `speaker` also wants the first word to start with a capital and a small letter ("Émilie",
# not "DJ" or "A"), and the second with a capital.
_SPEAKER = re.compile(r"^([^\W\d_]{2}[\w'’-]{0,30}(?: [^\W\d_][\w'’-]{1,30})?): (?=\S)")
# Words that open a line like a name but label a note ("Note: I'm vegan" is the user's own words,
# "Monday: gym" a plan); months that are also first names (April, May, June, August) are not here.
_LABELS = frozenset(
    """Note Notes Update Btw Fyi Reminder Todo Ps Edit Summary Context Re Fwd Question Answer Tip Warning
    Important Info Goal Goals Plan Plans Idea Ideas Status Result Results Example Hint Remember User
    Today Tonight Tomorrow Yesterday Morning Afternoon Evening Weekend Monday Tuesday Wednesday
    Thursday Friday Saturday Sunday January February March July September October November December
    Meeting Appointment Address Phone Email Time Date Place Location
    Subject Title Topic Agenda Breakfast Lunch Dinner Shopping Groceries Recipe Ingredients Dear
    Password Notice Urgent""".split()
)
# A word as names are written: letters, with inner hyphens and apostrophes ("Hyun-woo", "O'Neil");
# a possessive "'s" is not part of it.
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_POSSESSIVE = re.compile(r"['’]s$")
_SENTENCE = re.compile(r"(?:^|[.?!]\s+)([^\W\d_])")
# Besides stopwords, words that open a question and are also names ("May I…", "Would Will…").
_OPENERS = frozenset({"may", "might", "must", "shall", "should", "would", "could"})


def speaker(text: str) -> tuple[str | None, str]:
    """("Caroline", "I went …") for a transcript line "Caroline: I went …"; (None, text) otherwise
    ("Note: I'm vegan" is a label, and the user's own words)."""
    match = _SPEAKER.match(text)
    if match is None:
        return None, text
    name = match.group(1)
    words = name.split()
    if not (name[0].isupper() and name[1].islower()) or words[0] in _LABELS:
        return None, text
    if len(words) == 2 and not words[1][0].isupper():
        return None, text
    return name, text[match.end() :]


def names_in(question: str) -> frozenset[str]:
    """The words of `question` that can name a person: those written with a capital ("Caroline's"
    holds "Caroline"), but not a sentence's first word when it is a common word ("Will the kids…",
    "May I…"). A question written without any capital gives all its words, lower-cased."""
    question = unicodedata.normalize("NFC", question)
    found = [(m.start(), _POSSESSIVE.sub("", m.group())) for m in _WORD.finditer(question)]
    if not any(ch.isupper() for ch in question):
        return frozenset(word.lower() for _, word in found)
    openers = {m.start(1) for m in _SENTENCE.finditer(question)}
    return frozenset(
        word
        for start, word in found
        if word[0].isupper()
        and not (start in openers and (word.lower() in STOPWORDS or word.lower() in _OPENERS))
    )


def named_in(name: str, names: frozenset[str]) -> bool:
    """Whether every word of `name` is among `names` (`names_in` of a question): "Jon Snow" is named by
    "What did Jon Snow say?", not by "What did Jon say?"; "caroline" named in a question without
    capitals names "Caroline"."""
    parts = set(unicodedata.normalize("NFC", name).split())
    return bool(parts) and (parts <= names or {p.lower() for p in parts} <= names)


#: How much of a turn `names_particular` reads: a search reads a hundred candidates.
PARTICULAR_CAP = 2000
# A word after whitespace that follows anything but a sentence's end (., ! or ?), and that does not
# start with a small ASCII letter (so the engine skips most words; `_particular` checks the capital):
# written with a capital, it is a title, a place or a person ("I'm reading Dune by Frank Herbert").
_INNER_WORD = re.compile(r"(?<=[^.!?\s])\s+([^\W\d_a-z][\w'’-]*)")
_FIRST_PERSON = frozenset({"I", "I'm", "I've", "I'll", "I'd", "I’m", "I’ve", "I’ll", "I’d"})
_NUMBER = re.compile(r"\d")


def people(names: Iterable[str]) -> frozenset[str]:
    """The words of speakers' names, lower case: what `names_particular` leaves aside."""
    return frozenset(part.lower() for name in names for part in unicodedata.normalize("NFC", name).split())


def names_particular(said: str, speakers: frozenset[str]) -> bool:
    """Whether a turn's words (`said`: after the speaker's label) name something particular: a word
    written with a capital inside a sentence ("I'm reading Dune"), but not "I" and not a word of a
    speaker's name (`speakers`, from `people`: "Thanks, Maria!"); a quotation; or a number. A turn
    that names what it is about is likelier to answer a question than "Wow, that sounds great!".

    Read as written: a nickname ("Hey Mel!") or a capital after an emoji or a closing parenthesis
    counts, a single-quoted title does not, and text without capitals (all small letters, or a script
    without them) counts only by its quotations and numbers."""
    quoted_or_number, names = _particular(said[:PARTICULAR_CAP])
    return quoted_or_number or not names <= speakers


@functools.lru_cache(maxsize=8192)
def _particular(said: str) -> tuple[bool, frozenset[str]]:
    """Whether `said` holds a quotation or a number, and its capitalised words inside sentences
    ("I" aside, a possessive dropped), lower case. Cached: a user's turns come back search after
    search (about 4 µs a turn of LoCoMo's length to read)."""
    said = unicodedata.normalize("NFC", said)
    if '"' in said or "“" in said or _NUMBER.search(said):
        return True, frozenset()
    words = (match.group(1) for match in _INNER_WORD.finditer(said))
    return False, frozenset(
        _POSSESSIVE.sub("", word).lower() for word in words if word[0].isupper() and word not in _FIRST_PERSON
    )
