"""The local extractor (the default; rules only, no network): turning a message into memories.

It splits a message into sentence-sized facts, resolves
relative dates against the message's time, rewrites first person as facts about "User", and finds
typed entities, relations and categories with rules (`text.dates`, `rules`, `categories`).

No message may stall the process: every rule runs in time linear in its input, the
rules read a fact in windows of at most `WINDOW_CHARS` (all but the entity rules no further than
its first `RULE_CHARS`), a message gives at most `MAX_SENTENCES` facts, and the work runs in a worker
thread, off the event loop the services share.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from openmemory_core.contracts import Memory, Relation
from openmemory_core.text import speakers
from openmemory_core.text.dates import resolve_dates
from openmemory_core.text.keywords import iter_terms
from openmemory_ingest.extraction.base import Decision, Fact
from openmemory_ingest.extraction.categories import categorize
from openmemory_ingest.extraction.rules import (
    JOB_WORDS,
    NOT_NAMES,
    first_person_to_user,
    relations,
    typed_entities,
)
from openmemory_ingest.extraction.rules import Relation as FactRelation
from openmemory_ingest.offload import text_work

_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\.\.)\s+(?=[\"'(\[]?[A-Za-z0-9])")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")

#: The rules read a fact in windows of at most this many characters: nearly three times the longest
#: sentence of the extraction table, its held-out set and LoCoMo (177), and above their longest
#: message (434), so those read as one window, as before; a window's cost stays small even where a
#: rule's is more than linear, and a window is one short hold of the GIL per pattern.
WINDOW_CHARS = 500
#: At most this many sentences of a message become facts: each costs some sixty pattern calls
#: however short it is, and 200 sentences cover a message of the largest size (20,000 characters)
#: written in sentences of 100 characters on average. The test sets have at most 8.
MAX_SENTENCES = 200
#: Relations and categories are read in a fact's first this many characters (entities in all of
#: it, so a long note keeps its names; change cues only in facts of at most the service's
#: REPLACE_MAX_CHARS). An inferred fact is a sentence (the longest of the
#: test sets and LoCoMo is 434 characters); a longer one is a run-on or a pasted document, kept
#: whole, whose embedding reads only its first 256 tokens (about 1,000 characters) anyway. Reading
#: all 20,000 characters of the largest message cost 50-130 ms of relation patterns and 40 ms of
#: category patterns for one such fact, each time it was sent.
RULE_CHARS = 4_000
_SENTENCE_BREAK = re.compile(r"[.!?]\s+|\n")


def split_facts(text: str) -> list[str]:
    """Sentences and bullet lines, trimmed, without empties or repeats."""
    facts: dict[str, None] = {}  # ordered, and a repeat is found in constant time
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if not line:
            continue
        for sentence in _sentences(line):
            if len(sentence.strip(" .!?,;:-")) >= 2:
                facts.setdefault(sentence)
    return list(facts)


# A full stop after these ends a word, not a sentence ("Dr. Silva", "St. Louis", "e.g. tea").
_ABBREVIATIONS = re.compile(
    r"(?:\b(?:Dr|Prof|Mr|Mrs|Ms|Mx|St|Mt|Jr|Sr|Sgt|Capt|Gen|Rev|vs|etc|approx|dept|fig)"
    r"|\b[a-z]\.[a-z]|\b[A-Z])\.$"
)


#: A sentence in lower case of fewer words than this is a fragment of chat ("got promoted!!!",
#: "bit of extra cash"): it stays with the sentence after it (or, last in its line, before it), so
#: that no fact is only a fragment. Small talk stays apart, to be dropped.
FRAGMENT_WORDS = 4


def _fragment(piece: str) -> bool:
    return piece[:1].islower() and len(piece.split()) < FRAGMENT_WORDS and not _is_small_talk(piece)


def _sentences(line: str) -> list[str]:
    """A line's sentences: split after . ! ? and a word, except after an abbreviation; fragments
    join a neighbour."""
    pieces: list[str] = []
    for piece in _SENTENCE_END.split(line):
        if pieces and _ABBREVIATIONS.search(pieces[-1]):
            pieces[-1] = f"{pieces[-1]} {piece.strip()}"
        else:
            pieces.append(piece.strip())
    joined: list[str] = []
    pending = ""
    for piece in pieces:
        piece = f"{pending} {piece}".strip()
        pending = piece if _fragment(piece) else ""
        if not pending:
            joined.append(piece)
    if pending:
        if joined:
            joined[-1] = f"{joined[-1]} {pending}"
        else:
            joined.append(pending)
    return joined


def windows(text: str) -> list[str]:
    """`text` in consecutive pieces of at most WINDOW_CHARS for the rules to read: whole when it
    fits, else each cut after its last sentence end, or else its last space, in its second half
    (so a long text gives at most 2 * len(text) / WINDOW_CHARS + 1 windows)."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > WINDOW_CHARS:
        piece = text[start : start + WINDOW_CHARS]
        half = WINDOW_CHARS // 2
        ends = [m.end() for m in _SENTENCE_BREAK.finditer(piece, half)]
        space = max(piece.rfind(" "), piece.rfind("\n")) + 1
        cut = ends[-1] if ends else space if space > half else WINDOW_CHARS
        pieces.append(piece[:cut])
        start += cut
    pieces.append(text[start:])
    return pieces


# Words of greetings, thanks and acknowledgements (stemmed as keywords are): a sentence of these alone
# says nothing about the user. Written from general usage, not from any evaluation set.
_SMALL_TALK = frozenset(
    iter_terms(
        "hi hello hey hiya thanks thank thx ty cheers ok okay k kk yes yeah yep yup no nope nah lol lmao "
        "haha hahaha hehe bye goodbye cya cool great nice sure wow good morning evening night afternoon "
        "awesome perfect brilliant amazing fantastic excellent fine alright right exactly absolutely "
        "definitely totally indeed noted understood gotcha got sounds sound helpful help appreciate "
        "appreciated welcome please sorry oops hmm hm ah oh uh um wait see later soon talk chat today "
        "tonight now again much lot bit love like super really very so too all done enough everything "
        "that's it this that for"
    )
)


def _is_small_talk(sentence: str) -> bool:
    return all(term in _SMALL_TALK for term in iter_terms(sentence))  # stops at the first other word


def rule_part(text: str) -> str:
    """What the relation, category and change rules read of a fact: all of it, or its first
    RULE_CHARS cut at a space."""
    if len(text) <= RULE_CHARS:
        return text
    space = text.rfind(" ", 0, RULE_CHARS + 1)
    return text[: space if space > RULE_CHARS // 2 else RULE_CHARS]


def _fact(text: str, at: datetime, rewrite: bool) -> Fact:
    resolved = resolve_dates(text, at)
    sentence = first_person_to_user(resolved.text) if rewrite else text
    kinds: dict[str, str] = {}
    found: dict[FactRelation, None] = {}  # ordered, and a repeat is found in constant time
    for window in windows(sentence):
        for entity in typed_entities(window):
            kinds.setdefault(entity.name, entity.kind)
    ruled = rule_part(sentence)
    if rewrite:  # verbatim text keeps its first person: the relation patterns need "User"
        for window in windows(ruled):
            for relation in relations(window):
                found.setdefault(relation)
    for relation in found:  # a relation's named ends are entities too ("Anna lives in …")
        if relation.subject != "User":
            kinds.setdefault(relation.subject, "person")
        if relation.object[:1].isupper():
            kinds.setdefault(relation.object, "other")
    return Fact(
        text=sentence,
        entities=list(kinds),
        entity_kinds=kinds,
        categories=categorize(ruled),
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
        # Pure CPU work: in a worker thread, the event loop keeps serving. Each pattern call is
        # short (see WINDOW_CHARS), so the loop's thread gets the GIL back within milliseconds. A
        # short verbatim text's on the loop (`text_work`); inferring costs several times as much
        # (0.7 ms for 200 characters), so it always goes to the thread.
        if infer:
            return await asyncio.to_thread(extract_facts, text, infer, at)
        return await text_work(len(text), extract_facts, text, infer, at)


def extract_facts(text: str, infer: bool, at: datetime) -> list[Fact]:
    """`LocalExtractor.extract`, synchronously: the facts in a message sent at `at`."""
    if not infer:
        verbatim = text.strip()
        return [_fact(verbatim, at, rewrite=False)] if verbatim else []
    facts: list[Fact] = []
    people: dict[str, None] = {}  # the people the message has named so far, in order
    speaker, text = speakers.speaker(text)
    kept = [
        sentence
        for sentence in split_facts(text)[:MAX_SENTENCES]
        if not sentence.rstrip().endswith("?") and not _is_small_talk(sentence)
    ]
    for sentence in _attached(kept):
        for clause in clauses(resolve_pronouns(with_subject(sentence), list(people))):
            fact = _fact(clause, at, rewrite=True)
            if speaker is not None:
                fact = _said_by(fact, speaker)
            people.update((name, None) for name, kind in fact.entity_kinds.items() if kind == "person")
            facts.append(fact)
    return facts


# What makes a sentence stand on its own: the user in it ("I", "my", "we", …), a person's pronoun
# ("She loves jazz."), a name after its first word, or a first word that is a name ("Clover is …").
# Anything else ("It was mutual.", "The house feels so empty.", "way better pay") says more about
# the sentence before it.
_ABOUT_SOMEONE = re.compile(
    r"\b(?:I|I'm|I’m|I've|I’ve|I'd|I’d|I'll|I’ll|[Mm]e|[Mm]y|[Mm]ine|[Mm]yself|[Ww]e|[Ww]e're|[Ww]e’re|"
    r"[Ww]e've|[Ww]e’ve|[Oo]ur|[Oo]urs|[Uu]s|He|She|They)\b|(?<=\s)[A-Z][a-z]"
)
_OPENERS = frozenset(
    """Same Way Much Very Pretty Really Totally Such Kind Bit Lots Everything Nothing Something Still
    Anyway Plus Though Honestly Basically Apparently Luckily Sadly Turns Gonna Feels Seems Looks""".split()
)
#: A sentence joins its neighbour only while the two stay this short (a fact, not a paragraph).
ATTACH_CHARS = 300


def _stands_alone(sentence: str) -> bool:
    first = sentence.split(maxsplit=1)[0].strip("\"'(,.!") if sentence.strip() else ""
    named_first = first[:1].isupper() and first not in NOT_NAMES and first not in _OPENERS
    return named_first or _ABOUT_SOMEONE.search(sentence) is not None


def _attached(sentences: list[str]) -> list[str]:
    """Sentences that do not stand on their own (`_stands_alone`) joined to the one before them (the
    first, to the one after it), up to ATTACH_CHARS."""
    joined: list[str] = []
    waiting = ""  # leading sentences that wait for one that stands alone
    for sentence in sentences:
        alone = _stands_alone(sentence)
        if not alone and joined and len(joined[-1]) + len(sentence) < ATTACH_CHARS:
            joined[-1] = f"{joined[-1]} {sentence}"
        elif not alone and not joined and len(waiting) + len(sentence) < ATTACH_CHARS:
            waiting = f"{waiting} {sentence}".strip()
        elif waiting and len(waiting) + len(sentence) < ATTACH_CHARS:
            joined.append(f"{waiting} {sentence}")
            waiting = ""
        else:
            joined.extend(s for s in (waiting, sentence) if s)
            waiting = ""
    if waiting:
        joined.append(waiting)
    return joined


# A user often leaves out "I": "allergic to penicillin", "planning a trip to Peru", "product manager at
# Shopify", "born in Seoul, raised in LA". Such a sentence opens with a word that is never a subject.
_NO_SUBJECT = [
    (re.compile(r"^(?:been|got to|had)\b", re.I), "I've "),
    (re.compile(r"^(?:born|raised)\b", re.I), "I was "),
    # a diet on its own ("pescatarian for 3 years"), not a kind of food ("Vegan food is great")
    (re.compile(
        r"^(?:vegan|vegetarian|pescatarian|keto|paleo|gluten-free|dairy-free)\b(?=[ ,.!]|$)"
        r"(?! (?:food|recipes?|options?|meals?|dishes|restaurants?|places?|cheese|burgers?|is|are|was)\b)",
        re.I,
    ), "I'm "),
    (re.compile(r"^(?:favou?rite|all-time favou?rite)\b", re.I), "my "),
    (re.compile(r"^(?:first|second|third|fourth|final|last) year\b", re.I), "I'm in my "),
    (re.compile(
        r"^(?:(?:just|recently|finally|also|already|still|never|always|mostly|really) )?"
        r"(?:moved|switched|started|bought|booked|adopted|quit|joined|tried|went|made|finished|signed|sold|picked|took|lost|found|met|"
        r"visited|decided|spent|grew up|speak|play|use|love|like|hate|prefer|work|live|drink|eat|do|have|"
        r"need|want|own|run|drive|teach|study|got|left|love|enjoy|miss)\b", re.I), "I "),
    (re.compile(
        r"^(?:(?:just|recently|finally|also|still|currently|now) )?(?:planning|learning|going|gonna|thinking|"
        r"trying|hoping|working|doing|playing|using|living|moving|studying|taking|reading|watching|training|"
        r"saving|looking|dating|seeing|teaching|writing|building|running|cooking|freelancing|heading|"
        r"allergic|originally|from|big fan|huge fan|not a fan|not really|"
        r"into|obsessed|married|engaged|single|divorced|pregnant|retired|based|fluent|bilingual|"
        r"lactose|gluten)\b", re.I), "I'm "),
    (re.compile(
        rf"^(?:an? )?(?:[\w-]+ ){{0,3}}(?:{JOB_WORDS})(?: by trade| here\b|,| at | for | in )", re.I
    ), "I'm a "),
]  # fmt: skip


def with_subject(sentence: str) -> str:
    """ "allergic to penicillin" -> "I'm allergic to penicillin": a sentence that opens with a word
    that is never a subject gets the user as its subject; any other sentence is left as it is."""
    for pattern, subject in _NO_SUBJECT:
        if pattern.match(sentence):
            body = sentence
            if subject == "I'm a ":
                body = re.sub(r"^an? ", "", body, flags=re.I)
                subject = "I'm an " if body[:1].lower() in "aeiou" else subject
            return subject + body[:1].lower() + body[1:] if not body.startswith("I ") else body
    return sentence


def _said_by(fact: Fact, speaker: str) -> Fact:
    """A fact in a speaker's words: "User" (their "I") becomes the speaker."""

    def named(value: str) -> str:
        return re.sub(r"\bUser\b", speaker, value)

    kinds = {named(k): v for k, v in fact.entity_kinds.items()}
    kinds.setdefault(speaker, "person")
    relations = [
        Relation(subject=named(r.subject), type=r.type, object=named(r.object)) for r in fact.relations
    ]
    return Fact(
        text=named(fact.text), entities=list(kinds), categories=fact.categories,
        relations=relations, entity_kinds=kinds, refers_to=fact.refers_to,
    )  # fmt: skip


_HE_SHE = re.compile(r"^(?:He|She)(?:'s|’s)?\b")
_WE = re.compile(r"^We\b")
_OUR = re.compile(r"\b(?:our|Our)\b")


def resolve_pronouns(sentence: str, people: list[str]) -> str:
    """ "He"/"she" opening a sentence become the one person the message named before it ("My brother
    Tom lives in Paris. He works at Zeta." -> "Tom works at Zeta."), "we" becomes "User and <them>";
    with no one or several named, the pronoun stays. "Our" is the user's."""
    if len(people) == 1:
        name = people[0]
        sentence = _HE_SHE.sub(lambda m: f"{name} is" if m.group(0).endswith("s") else name, sentence)
        sentence = _WE.sub(f"User and {name}", sentence)
    return _OUR.sub(lambda m: "My" if m.group(0) == "Our" else "my", sentence)


# Verbs that open a second clause of the same subject: "I live in Lisbon and work at Acme".
_CLAUSE_VERBS = frozenset(
    """live lives lived work works worked study studies studied move moved have has had own owns owned
    love loves loved like likes liked enjoy enjoys enjoyed hate hates hated prefer prefers preferred
    play plays played speak speaks spoke drive drives drove teach teaches taught go goes went got
    started joined run runs ran grew became am was use uses used""".split()
)
_FIRST_PERSON = re.compile(r"^(?:I|I'm|I’m|I've|I’ve|I'd|I’d)\s", re.IGNORECASE)
_AND = re.compile(r",?\s+(?:and|but)\s+(?:then\s+|also\s+)?(?=(\w+)\b)")


def clauses(sentence: str) -> list[str]:
    """A sentence of the user's split into one fact per clause, the subject carried over: "I live in
    Lisbon and work at Acme." gives "I live in Lisbon." and "I work at Acme.", so that a later move
    supersedes the home and not the job. Only a clause that opens with a verb is split off, so a list
    ("tea and coffee") or a name ("Procter and Gamble") stays whole."""
    if not _FIRST_PERSON.match(sentence):
        return [sentence]
    end = sentence[-1] if sentence[-1] in ".!" else ""
    body = sentence[:-1] if end else sentence
    cuts = [m for m in _AND.finditer(body) if m.group(1).casefold() in _CLAUSE_VERBS]
    if not cuts:
        return [sentence]
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(body[start : cut.start()])
        start = cut.end()
    pieces.append(body[start:])
    first, *rest = (piece.strip() for piece in pieces)
    return [first + end, *(f"I {piece}{end}" for piece in rest if piece)]
