"""Consolidation: fold near-duplicate memories into one, archive temporary memories whose time is over.

Two memories are one fact when they are close in meaning (dense cosine at least `SIMILARITY`, chosen
by cross-validation on `tests/data/near_duplicates.json`, bench/README.md) and nothing in their words
tells them apart: the same named entities (each one's entities appear in the other's text), the same
kinds of relation where both state one (LIKES is not DISLIKES), the same negation, the same "used
to", the same numbers and months, and the same content words (`content_words`: a colour, a kind, a
job that one has and the other lacks or has another of makes another fact, even when MiniLM finds
the two closer than 0.95; only inflection, British/American spelling, naming verbs and a few
emphasis words are let through, not synonyms, since word vectors put "older" next to "younger").
Pairs come from each memory's nearest neighbours in the vector store (`dense_neighbours`, batched),
never from all pairs; groups are joined only when every two memories of the joined group pass (no
chains of "close to the next one").

Planning is pure over what was read (`plan`, run in a worker thread). The writes are a
`ConsolidateCommand` on the user's partition, applied by ingest in order with the user's other
commands (`apply_consolidation`), which checks every action again: the kept memory gets
`metadata.merged_from`, each other one is archived with `metadata.merged_into` and
`metadata.archived_reason` ("merged into <id>"). Each change is an UPDATE event, so the history of
both shows it, and nothing is deleted: setting an archived memory active again brings it back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from openmemory_core import contracts as c
from openmemory_core.stores.vectors import VectorStore
from openmemory_core.text.dates import MONTHS
from openmemory_core.text.keywords import STOPWORDS, stem
from openmemory_core.text.plans import passed_plan
from openmemory_ingest.service import Applied

#: Cosine (MiniLM, stored vectors) at or above which two memories may be one fact; chosen by 5-fold
#: cross-validation on `services/ingest/tests/data/near_duplicates.json` (bench/README.md).
SIMILARITY = 0.90
#: Metadata keys consolidation writes (and reads: `EXPIRES_AT`, `TEMPORARY` are the client's).
MERGED_INTO = "merged_into"
MERGED_FROM = "merged_from"
ARCHIVED_REASON = c.ARCHIVED_REASON
EXPIRES_AT = "expires_at"
TEMPORARY = "temporary"
#: A kept memory names at most this many memories merged into it (the events name them all).
MAX_MERGED_FROM = 200
#: A group holds at most this many memories.
MAX_GROUP = 20

#: Words as entity names are looked up among them: "emil's" holds the word "emil".
_WORD = re.compile(r"[a-z0-9]+")
_NEGATION = re.compile(
    r"\b(?:not|no|never|nobody|nothing|none|neither|nor|without|dislikes?|hates?)\b|n't\b|\bcannot\b"
)
_FORMER = re.compile(r"\b(?:used to|no longer|any ?more|formerly|previously|quit|ex)\b")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "once": "1", "two": "2", "twice": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11",
    "twelve": "12", "fifteen": "15", "twenty": "20", "thirty": "30", "hundred": "100",
}  # fmt: skip
_MONTH_WORDS = {m: str(i + 1) for i, m in enumerate(MONTHS)} | {
    m[:3]: str(i + 1) for i, m in enumerate(MONTHS)
}
_CAPITALISED = re.compile(r"\b(?:" + "|".join(w.capitalize() for w in _MONTH_WORDS) + r")\b")

#: Words whose presence or absence changes no fact: emphasis, "currently", "has got", "is able to",
#: and "User" (the extractor's subject). Frequency words ("usually", "always") are not among them.
_LIGHT = frozenset(
    "really truly actually absolutely definitely totally certainly genuinely honestly indeed quite "
    "also currently presently got gotten able user".split()
)
#: One spelling for British and American variants, before stemming ("colour", "color").
_SPELLING = (
    (re.compile(r"^([a-z]{2,}[^aeiou])our(s|ed|ing|ite|ites|able|ful|er|ers|ist|ists)?$"), r"\1or\2"),
    (re.compile(r"^([a-z]{2,})([bt])re(s)?$"), r"\1\2er\3"),
    (re.compile(r"^([a-z]{3,})is(e|es|ed|ing|ation|ations)$"), r"\1iz\2"),
    (re.compile(r"^([a-z]{3,})ys(e|es|ed|ing)$"), r"\1yz\2"),
    (re.compile(r"^([a-z]{3,})ogue(s)?$"), r"\1og\2"),
    (re.compile(r"^([a-z]{2,}e)ll(ed|ing|er|ers)$"), r"\1l\2"),
    (re.compile(r"^([a-z]{3,})amme(s)?$"), r"\1am\2"),
)
_SPELLING_WORDS = {
    "practise": "practice", "practises": "practices", "practised": "practiced", "practising": "practicing",
    "licence": "license", "defence": "defense", "offence": "offense", "grey": "gray", "mum": "mom",
    "mums": "moms", "jewellery": "jewelry", "pyjamas": "pajamas", "aeroplane": "airplane", "tyre": "tire",
}  # fmt: skip
#: Naming verbs are one word: "a dog called Rex", "a dog named Rex", "the dog's name is Rex".
_NAMING = frozenset("call called calls calling name named names naming".split())
#: "works as a nurse" says what "is a nurse" says (not "worked as": that is the past).
_WORKS_AS = re.compile(r"\b(?:works|working|work) as\b")
_NEGATION_WORDS = frozenset("never nobody nothing none neither nor without cannot".split())
_CONTENT_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def content_words(lowered: str) -> frozenset[str]:
    """The stems of a lower-cased text's content words: not stopwords, not `_LIGHT`, not numbers or
    months (compared on their own), British spelling made American, possessives dropped."""
    found = set()
    for match in _CONTENT_WORD.finditer(_WORKS_AS.sub("is", lowered)):
        word = match.group().removesuffix("'s")
        if word in STOPWORDS or word in _LIGHT or word in _NUMBER_WORDS or word in _MONTH_WORDS:
            continue
        if word in _NEGATION_WORDS or word.endswith("n't"):  # negation is compared on its own
            continue
        if word in _NAMING:
            found.add("=name")
            continue
        word = _SPELLING_WORDS.get(word, word)
        for pattern, replacement in _SPELLING:
            word = pattern.sub(replacement, word)
        found.add(stem(word))
    return frozenset(found)


@dataclass(frozen=True)
class Features:
    """What two memories must share to be one fact, read once per memory."""

    text: str  # lower-cased, single-spaced, padded with spaces: entity names are looked up in it
    entities: frozenset[str]
    relation_types: frozenset[str]
    negated: bool
    former: bool
    numbers: frozenset[str]
    months: frozenset[str]
    content: frozenset[str] = frozenset()  # `content_words` (the bench empties it to score the rest)


def features(text: str, entities: list[str], relations: list[c.Relation]) -> Features:
    lowered = " ".join(text.casefold().replace("’", "'").split())
    words = _WORD.findall(lowered)
    numbers = {w for w in words if w.isdigit()} | {_NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS}
    # a month counts only capitalised and not opening the text ("May I …"; "may" is mostly a verb)
    months = {_MONTH_WORDS[m.group().casefold()] for m in _CAPITALISED.finditer(text) if m.start() > 0}
    return Features(
        text=f" {' '.join(words)} ",
        entities=frozenset(e.casefold() for e in entities if e.strip()),
        relation_types=frozenset(r.type for r in relations),
        negated=_NEGATION.search(lowered) is not None,
        former=_FORMER.search(lowered) is not None,
        numbers=frozenset(numbers),
        months=frozenset(months),
        content=content_words(lowered),
    )


def features_of(memory: c.Memory) -> Features:
    return features(memory.text, memory.entities, memory.relations)


def _mentions(text: str, entity: str) -> bool:
    words = _WORD.findall(entity.casefold())
    return bool(words) and f" {' '.join(words)} " in text


def same_fact(a: Features, b: Features) -> bool:
    """Whether nothing in two close texts tells them apart (the cosine is checked apart)."""
    if a.negated != b.negated or a.former != b.former:
        return False
    if a.numbers != b.numbers or a.months != b.months:
        return False
    if a.relation_types and b.relation_types and a.relation_types != b.relation_types:
        return False
    if a.content != b.content:  # a word one has and the other lacks: "a blue kettle", "a white kettle"
        return False
    return all(_mentions(b.text, e) for e in a.entities) and all(_mentions(a.text, e) for e in b.entities)


def expires_at(memory: c.Memory, temporary_days: float) -> datetime | None:
    """When a temporary memory's time is over: `metadata.expires_at` (ISO 8601; a time without a zone
    is UTC), else `metadata.temporary: true` and `temporary_days` after it was added. None: kept."""
    value = memory.metadata.get(EXPIRES_AT)
    if isinstance(value, str) and len(value) <= 64:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            at = None
        if at is not None:
            return at if at.tzinfo else at.replace(tzinfo=UTC)
    if memory.metadata.get(TEMPORARY) is True:
        return memory.created_at + timedelta(days=temporary_days)
    return None


def keeper(group: list[c.Memory]) -> c.Memory:
    """The memory a group is folded into: the one that says most (distinct words), then the newest."""
    return max(group, key=lambda m: (len(set(_WORD.findall(m.text.casefold()))), m.created_at, m.id))


@dataclass
class Plan:
    merges: list[tuple[c.Memory, list[c.Memory], float]] = field(default_factory=list)
    expiries: list[tuple[c.Memory, datetime]] = field(default_factory=list)
    past_plans: list[tuple[c.Memory, str]] = field(default_factory=list)


def mergeable(memories: list[c.Memory], temporary_days: float) -> list[c.Memory]:
    """Memories a merge may touch: active, current (not replaced, and not what replaced another:
    search follows those links), not part of a conversation (its turns are linked by `previous`), and
    not temporary (they go on their own)."""
    linked = {m.previous for m in memories if m.previous} | {m.superseded_by for m in memories}
    return [
        m
        for m in memories
        if m.state is c.MemoryState.ACTIVE
        and m.superseded_by is None
        and m.previous is None
        and m.id not in linked
        and expires_at(m, temporary_days) is None
    ]


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # stored vectors are unit length


def plan(
    memories: list[c.Memory],
    vectors: Mapping[str, list[float]],
    neighbours: Mapping[str, list[tuple[str, float]]],
    now: datetime,
    similarity: float = SIMILARITY,
    temporary_days: float = 7.0,
) -> Plan:
    """A user's consolidation, from their active memories, their dense vectors and each one's nearest
    neighbours (id, cosine). Groups are built from the closest pairs first; two groups join only
    when every two memories of the result are the same fact."""
    result = Plan()
    for memory in memories:
        at = expires_at(memory, temporary_days)
        if at is not None and at <= now and memory.state is c.MemoryState.ACTIVE:
            result.expiries.append((memory, at))
        elif (period := passed_plan(memory.text, memory.created_at, now)) is not None:
            result.past_plans.append((memory, period.label))
    candidates = {m.id: m for m in mergeable(memories, temporary_days) if m.id in vectors}
    feats = {i: features_of(m) for i, m in candidates.items()}
    pairs: dict[tuple[str, str], float] = {}
    for i, found in neighbours.items():
        for j, score in found:
            if i != j and i in candidates and j in candidates and score >= similarity:
                pairs[(min(i, j), max(i, j))] = score
    group_of: dict[str, list[str]] = {}
    for (i, j), _ in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
        gi, gj = group_of.get(i, [i]), group_of.get(j, [j])
        if gi is gj or len(gi) + len(gj) > MAX_GROUP:
            continue
        if all(
            same_fact(feats[x], feats[y]) and _cosine(vectors[x], vectors[y]) >= similarity
            for x in gi
            for y in gj
        ):
            joined = gi + gj
            for member in joined:
                group_of[member] = joined
    seen: set[int] = set()
    for group in group_of.values():
        if id(group) in seen:
            continue
        seen.add(id(group))
        members = [candidates[i] for i in group]
        kept = keeper(members)
        lowest = min(_cosine(vectors[x], vectors[y]) for x in group for y in group if x < y)
        others = sorted((m for m in members if m.id != kept.id), key=lambda m: m.created_at)
        result.merges.append((kept, others, round(lowest, 4)))
    result.merges.sort(key=lambda merge: merge[0].created_at)
    return result


def command_of(user_id: str, found: Plan) -> c.ConsolidateCommand | None:
    """The command that applies a plan, or None when there is nothing to change."""
    if not found.merges and not found.expiries:
        return None
    merges = [
        c.MergeAction(keep=k.id, merged=[m.id for m in others], similarity=s) for k, others, s in found.merges
    ]
    expiries = [c.ExpiryAction(memory_id=m.id, expired_at=at) for m, at in found.expiries]
    return c.ConsolidateCommand(
        user_id=user_id,
        app="consolidation",
        merges=merges[: c.MAX_CONSOLIDATION_ACTIONS],
        expiries=expiries[: c.MAX_CONSOLIDATION_ACTIONS],
    )


def short(text: str) -> str:
    chars = c.REPORTED_TEXT_CHARS
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def report_of(user_id: str, read: int, truncated: bool, found: Plan, dry_run: bool) -> c.ConsolidationReport:
    return c.ConsolidationReport(
        user_id=user_id,
        dry_run=dry_run,
        memories=read,
        truncated=truncated,
        merges=[
            c.PlannedMerge(
                keep=k.id,
                keep_text=short(k.text),
                merged=[m.id for m in others],
                merged_texts=[short(m.text) for m in others],
                similarity=s,
            )
            for k, others, s in found.merges[: c.MAX_CONSOLIDATION_ACTIONS]
        ],
        expiries=[
            c.PlannedExpiry(memory_id=m.id, text=short(m.text), expired_at=at)
            for m, at in found.expiries[: c.MAX_CONSOLIDATION_ACTIONS]
        ],
        past_plans=[
            c.PastPlan(memory_id=m.id, text=short(m.text), period=label)
            for m, label in found.past_plans[: c.REPORTED_PAST_PLANS]
        ],
        past_plan_count=len(found.past_plans),
    )


def archived(memory: c.Memory, at: datetime, reason: str, extra: dict[str, Any]) -> c.Memory:
    metadata = {**memory.metadata, **extra, ARCHIVED_REASON: reason}
    return memory.model_copy(update={"state": c.MemoryState.ARCHIVED, "updated_at": at, "metadata": metadata})


async def apply_consolidation(vectors: VectorStore, command: c.ConsolidateCommand) -> Applied:
    """Apply a plan, checking each action against the stores: only the user's own active memories
    change (a memory deleted, archived or edited away since the plan is left alone), and applying
    the command again changes nothing more."""
    applied = Applied()
    at = command.issued_at
    for merge in command.merges:
        found = {m.id: m for m in await vectors.get(command.user_id, [merge.keep, *merge.merged])}
        kept = found.get(merge.keep)
        if kept is None or kept.state is not c.MemoryState.ACTIVE:
            continue
        folded = [
            found[i]
            for i in dict.fromkeys(merge.merged)
            if i in found and i != kept.id and found[i].state is c.MemoryState.ACTIVE
        ]
        if not folded:
            continue
        for old in folded:
            reason = f"merged into {kept.id}"
            new = archived(old, at, reason, {MERGED_INTO: kept.id})
            await vectors.set_payload(new)
            _record(applied, command, old, new, reason)
        earlier = kept.metadata.get(MERGED_FROM)
        merged_from = [*(earlier if isinstance(earlier, list) else []), *(m.id for m in folded)]
        metadata = {**kept.metadata, MERGED_FROM: list(dict.fromkeys(merged_from))[-MAX_MERGED_FROM:]}
        new = kept.model_copy(update={"metadata": metadata, "updated_at": at})
        await vectors.set_payload(new)
        merged = f"{len(folded)} near-duplicate{'s' if len(folded) != 1 else ''}"
        _record(applied, command, kept, new, f"kept; {merged} merged into it")
    if command.expiries:
        found = {m.id: m for m in await vectors.get(command.user_id, [e.memory_id for e in command.expiries])}
        for expiry in command.expiries:
            temporary = found.get(expiry.memory_id)
            # still active, still marked temporary, and its time is over at the command's time
            if temporary is None or temporary.state is not c.MemoryState.ACTIVE or expiry.expired_at > at:
                continue
            if EXPIRES_AT not in temporary.metadata and temporary.metadata.get(TEMPORARY) is not True:
                continue
            reason = f"temporary: expired at {expiry.expired_at.isoformat()}"
            gone = archived(temporary, at, reason, {})
            await vectors.set_payload(gone)
            _record(applied, command, temporary, gone, reason)
    return applied


def _record(applied: Applied, command: c.CommandBase, before: c.Memory, after: c.Memory, why: str) -> None:
    """An UPDATE event with the whole memory before and after; a short summary for the result."""
    applied.events.append(
        c.MemoryEvent(
            request_id=command.request_id, user_id=command.user_id, app=command.app, memory_id=after.id,
            change=c.ChangeKind.UPDATE, before=before, after=after,
        )
    )  # fmt: skip
    state = after.state if after.state is not c.MemoryState.ACTIVE else None
    applied.summary.append(
        c.ChangeSummary(
            id=after.id, memory=short(after.text), event=c.ChangeKind.UPDATE, state=state, note=why
        )
    )
