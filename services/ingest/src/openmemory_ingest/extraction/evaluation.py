"""Scoring an extractor against a table of expected facts, entities, relations and dates."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from openmemory_ingest.extraction.base import Extractor


@dataclass
class PrecisionRecall:
    true_positives: int = 0
    predicted: int = 0
    expected: int = 0

    def add(self, predicted: set[Any], expected: set[Any]) -> None:
        self.true_positives += len(predicted & expected)
        self.predicted += len(predicted)
        self.expected += len(expected)

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.expected if self.expected else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": round(self.precision, 3),
            "recall": round(self.recall, 3),
            "f1": round(self.f1, 3),
        }


@dataclass
class TableScore:
    facts: PrecisionRecall = field(default_factory=PrecisionRecall)
    entities: PrecisionRecall = field(default_factory=PrecisionRecall)
    relations: PrecisionRecall = field(default_factory=PrecisionRecall)
    dates_right: int = 0
    dates_total: int = 0
    cases: int = 0
    seconds: float = 0.0
    misses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def date_accuracy(self) -> float:
        return self.dates_right / self.dates_total if self.dates_total else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "facts": self.facts.as_dict(),
            "entities": self.entities.as_dict(),
            "relations": self.relations.as_dict(),
            "dates": {"accuracy": round(self.date_accuracy, 3), "scored": self.dates_total},
            "ms_per_case": round(1000 * self.seconds / max(self.cases, 1), 3),
        }


def _norm(text: str) -> str:
    return re.sub(r"[^\w' ]+", "", text.casefold().replace("’", "'")).strip()


def load_table(path: Path) -> tuple[datetime, list[dict[str, Any]]]:
    data = json.loads(path.read_text())
    return datetime.fromisoformat(data["message_time"]), list(data["cases"])


async def score_table(extractor: Extractor, path: Path) -> TableScore:
    at, cases = load_table(path)
    score = TableScore()
    for case in cases:
        started = time.perf_counter()
        facts = await extractor.extract(case["text"], True, at)
        score.seconds += time.perf_counter() - started
        score.cases += 1
        predicted_facts = {_norm(f.text) for f in facts}
        predicted_entities = {_norm(e) for f in facts for e in f.entities}
        predicted_relations = {
            (_norm(r.subject), r.type, _norm(r.object)) for f in facts for r in f.relations
        }
        expected_relations = {(_norm(s), t, _norm(o)) for s, t, o in case["relations"]}
        score.facts.add(predicted_facts, {_norm(f) for f in case["facts"]})
        score.entities.add(predicted_entities, {_norm(e) for e in case["entities"]})
        score.relations.add(predicted_relations, expected_relations)
        dates = {f.refers_to.isoformat() for f in facts if f.refers_to}
        predicted_date = min(dates) if dates else None
        if predicted_date or case["date"]:
            score.dates_total += 1
            score.dates_right += predicted_date == case["date"]
        if predicted_relations != expected_relations or predicted_date != case["date"]:
            score.misses.append(
                {
                    "text": case["text"],
                    "relations": sorted(predicted_relations ^ expected_relations),
                    "date": [predicted_date, case["date"]],
                }
            )
    return score


@dataclass
class MeaningScore:
    """An extractor against a set whose expected output is written as meaning: each fact by the
    key words a correct text must contain, triples, the date (or that it is a habit), categories,
    and whether the message is small talk (no fact at all)."""

    facts: PrecisionRecall = field(default_factory=PrecisionRecall)
    triples: PrecisionRecall = field(default_factory=PrecisionRecall)
    categories: PrecisionRecall = field(default_factory=PrecisionRecall)
    forbidden_triples: int = 0  # triples the set says must not come out ("learning" is not "speaks")
    small_talk_right: int = 0
    small_talk_total: int = 0
    dates_right: int = 0
    dates_total: int = 0
    habits_right: int = 0
    habits_total: int = 0
    garbled: int = 0  # facts whose verbs do not agree with "User" (`agreement_errors`)
    fact_count: int = 0
    cases: int = 0
    per_case_ms: list[float] = field(default_factory=list)
    misses: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.per_case_ms)
        return {
            "cases": self.cases,
            "facts": self.facts.as_dict(),
            "triples": self.triples.as_dict(),
            "forbidden_triples": self.forbidden_triples,
            "categories": self.categories.as_dict(),
            "small_talk": f"{self.small_talk_right}/{self.small_talk_total}",
            "dates": f"{self.dates_right}/{self.dates_total}",
            "habits_left_undated": f"{self.habits_right}/{self.habits_total}",
            "garbled_facts": f"{self.garbled}/{self.fact_count}",
            "ms_per_case_p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3) if ordered else 0.0,
        }


# The verb-agreement check: written apart from the rules (its own word lists), so that it does not
# share their blind spots. "User" alone is one person: "User need" and "User work" are wrong, and so
# are the forms a rewrite garbles ("User nevers had", "User brokes up", "User barelies sleeps").
_BASE_VERBS = frozenset(
    """live work have do go like love want need use play eat drink prefer enjoy hate speak own study
    run drive make take get think know feel try start plan keep teach write read watch walk cook visit
    travel move come see say tell give find buy leave pay spend meet learn lose win sleep wear sing""".split()
)
_ADVERB_WORDS = frozenset(
    """just never always also still really often usually now even finally actually sometimes rarely
    already recently currently mostly generally especially definitely honestly totally absolutely""".split()
)
_PAST_FORMS = frozenset(
    """broke spoke took made went came saw ate drank wrote drove rode knew grew threw flew swam began
    ran sang gave found felt kept left lost met paid said sent spent told thought won got had was did
    bought brought caught taught fell held sat stood stole chose froze woke wore sold heard""".split()
)
_SUBJECT_THEN_WORDS = re.compile(r"(?<!and )(?<!& )\bUser\b(?!'s)((?: [A-Za-z]+){1,3})")


def agreement_errors(text: str) -> list[str]:
    """The verbs of `text` that do not agree with a "User" subject (empty when all do)."""
    errors: list[str] = []
    for match in _SUBJECT_THEN_WORDS.finditer(text):
        words = match.group(1).split()
        while words and (words[0] in _ADVERB_WORDS or (words[0].endswith("ly") and len(words) > 1)):
            words.pop(0)
        if not words:
            continue
        word = words[0]
        garbled = word.endswith("s") and (word[:-1] in _ADVERB_WORDS or word[:-1] in _PAST_FORMS)
        garbled = garbled or (word.endswith("lies") and word[:-3] + "y" not in ("apply", "reply", "rely"))
        if word in _BASE_VERBS or garbled:
            errors.append(word)
    return errors


def says(text: str, key_words: list[str]) -> bool:
    """Whether a fact's text holds every key word (case-insensitive, any order)."""
    folded = _norm(text)
    return all(_norm(word) in folded for word in key_words)


def _triple(subject: str, relation: str, obj: str) -> tuple[str, str, str]:
    return (_norm(subject), relation, _norm(obj))


async def score_meaning(extractor: Extractor, path: Path) -> MeaningScore:
    """Score `extractor` on a meaning set (`bench/data/extraction_eval_v2.json`'s format)."""
    at, cases = load_table(path)
    score = MeaningScore()
    for case in cases:
        started = time.perf_counter()
        facts = await extractor.extract(case["text"], True, at)
        score.per_case_ms.append(1000 * (time.perf_counter() - started))
        score.cases += 1
        texts = [f.text for f in facts]
        score.fact_count += len(texts)
        garbled = [t for t in texts if agreement_errors(t)]
        score.garbled += len(garbled)
        expected_facts = [] if case.get("small_talk") else case.get("facts", [])
        found = sum(any(says(t, e["key_words"]) for t in texts) for e in expected_facts)
        correct = sum(any(says(t, e["key_words"]) for e in expected_facts) for t in texts)
        score.facts.true_positives += found
        score.facts.expected += len(expected_facts)
        score.facts.predicted += (
            len(texts) - correct + found
        )  # a text matching several facts counts once each
        if case.get("small_talk"):
            score.small_talk_total += 1
            score.small_talk_right += not facts
        predicted = {_triple(r.subject, r.type, r.object) for f in facts for r in f.relations}
        alternatives = {_triple(*t) for t in case.get("acceptable_alternative_triples", [])}
        expected = {_triple(*t) for t in case.get("triples", [])}
        score.triples.add(predicted - (alternatives - expected), expected)
        score.forbidden_triples += len(predicted & {_triple(*t) for t in case.get("must_not_triples", [])})
        score.categories.add({c for f in facts for c in f.categories}, set(case.get("categories", [])))
        dates = sorted(f.refers_to.isoformat() for f in facts if f.refers_to)
        if case.get("habit"):
            score.habits_total += 1
            score.habits_right += not dates
        elif case.get("date"):
            score.dates_total += 1
            score.dates_right += bool(dates) and dates[0] in {
                case["date"],
                *case.get("date_alternatives", []),
            }
        if predicted != expected or garbled:
            score.misses.append({"id": case.get("id"), "text": case["text"], "got": sorted(predicted),
                                 "want": sorted(expected), "garbled": garbled})  # fmt: skip
    return score
