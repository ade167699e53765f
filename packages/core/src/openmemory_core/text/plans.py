"""Plans whose date has passed: "User is planning a trip to Rome on 5 March 2026", read after that day.

A memory keeps the words it was told in ("is planning", "is going to"), so once its date is behind
us it reads as a plan still ahead. Search adds a note to such a hit (nothing stored changes), and
consolidation counts them. A memory is a dated plan when its text names a date (ingest has already
made relative dates absolute; a verbatim memory's "next week" is read against when it was added)
and either the date lies after the day it was told, or the text says it is a plan ("planning",
"going to", "will", "booked", …). Its date has passed once the whole period it names is over: the
day, the week of, the weekend of, the month, the season or the year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from openmemory_core.text.dates import MONTHS, resolve_dates

_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ABBR = {m[:3]: i + 1 for i, m in enumerate(MONTHS)}
_SEASONS = {"spring": (3, 5), "summer": (6, 8), "autumn": (9, 11), "fall": (9, 11), "winter": (12, 2)}

#: Words that say a text speaks of something ahead. Bounded alternations: linear on any input.
PLAN_CUE = re.compile(
    r"\b(?:plan(?:s|ned|ning)?|going to|gonna|will|intend(?:s|ed|ing)?|schedul(?:ed|es)|booked|"
    r"upcoming|coming up|looking forward|about to|hop(?:e|es|ing) to|wants? to|aim(?:s|ing)? to|"
    r"expect(?:s|ing)? to|is due|are due)\b|\w'll\b",
    re.IGNORECASE,
)
#: Without one of these (a digit, or a word every relative date `resolve_dates` reads contains:
#: weekdays end in "day", "weekend" holds "week"), a text names no period: a cheap test first.
MAY_NAME_A_TIME = re.compile(
    r"\d|day|week|month|year|night|morning|evening|tomorrow|summer|winter|spring|autumn|fall", re.IGNORECASE
)
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?{_MONTH},? (\d{{4}})\b", re.I)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH} (\d{{1,2}})(?:st|nd|rd|th)?,? (\d{{4}})\b", re.I)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MONTH_YEAR = re.compile(rf"\b{_MONTH},? (\d{{4}})\b", re.I)
_SEASON_YEAR = re.compile(r"\b(spring|summer|autumn|fall|winter),? (\d{4})\b", re.I)
_YEAR = re.compile(r"\b(?:in|by|during) ((?:19|20)\d{2})\b(?! \w)")


@dataclass(frozen=True)
class Period:
    """A span of days a text names, first and last included, and how to say it."""

    start: date
    end: date
    label: str


def _month(name: str) -> int:
    return _ABBR[name.lower()[:3]]


def _day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_end(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(days=1)


def _periods(text: str) -> list[tuple[int, Period]]:
    """Every date or period the text names, with where it starts."""
    found: list[tuple[int, Period]] = []

    def day_period(at: int, day: date | None, prefix: str) -> None:
        if day is None:
            return
        if prefix.endswith("week of "):  # "in the week of 2 March 2026" (dates.resolve_dates)
            found.append((at, Period(day, day + timedelta(days=6), f"the week of {day.isoformat()}")))
        elif prefix.endswith("weekend of "):
            found.append((at, Period(day, day + timedelta(days=1), f"the weekend of {day.isoformat()}")))
        else:
            found.append((at, Period(day, day, day.isoformat())))

    for m in _DAY_MONTH_YEAR.finditer(text):
        day_period(m.start(), _day(int(m.group(3)), _month(m.group(2)), int(m.group(1))), text[: m.start()])
    for m in _MONTH_DAY_YEAR.finditer(text):
        day_period(m.start(), _day(int(m.group(3)), _month(m.group(1)), int(m.group(2))), text[: m.start()])
    for m in _ISO.finditer(text):
        day_period(m.start(), _day(int(m.group(1)), int(m.group(2)), int(m.group(3))), text[: m.start()])
    days = [(at, p) for at, p in found]
    for m in _MONTH_YEAR.finditer(text):
        if any(at <= m.start() < at + 20 for at, _ in days):  # the month of a full date already found
            continue
        year, month = int(m.group(2)), _month(m.group(1))
        label = f"{MONTHS[month - 1].capitalize()} {year}"
        found.append((m.start(), Period(date(year, month, 1), _month_end(year, month), label)))
    for m in _SEASON_YEAR.finditer(text):
        year, (first, last) = int(m.group(2)), _SEASONS[m.group(1).lower()]
        end_year = year + 1 if last < first else year
        found.append(
            (m.start(), Period(date(year, first, 1), _month_end(end_year, last), f"{m.group(1)} {year}"))
        )
    for m in _YEAR.finditer(text):
        year = int(m.group(1))
        found.append((m.start(), Period(date(year, 1, 1), date(year, 12, 31), str(year))))
    return found


@lru_cache(maxsize=4096)  # search reads it for every hit, and the same memories come back often
def planned_period(text: str, told_at: datetime) -> Period | None:
    """The period a text plans something for, or None when it is not a dated plan. `told_at`: when
    the memory was added (it places a verbatim memory's relative dates, and says what was ahead).
    It depends on its two arguments only, so it is kept for the last 4,096 (at most 2,000
    characters each: 8 MB)."""
    if len(text) > 2000:  # a pasted document is not a plan
        return None
    if not MAY_NAME_A_TIME.search(text):  # most memories: no date to resolve (search reads every hit)
        return None
    absolute = resolve_dates(text, told_at).text
    periods = _periods(absolute)
    if not periods:
        return None
    _, period = min(periods, key=lambda found: found[0])
    if period.start > told_at.date() or PLAN_CUE.search(text):
        return period
    return None


def passed_plan(text: str, told_at: datetime, now: datetime) -> Period | None:
    """The period of a dated plan that is over by `now` (the day after its last day), else None."""
    period = planned_period(text, told_at)
    return period if period is not None and period.end < now.date() else None


def plan_note(text: str, told_at: datetime, now: datetime) -> str | None:
    """What a search hit says of a plan whose date has passed: read it in the past tense."""
    period = passed_plan(text, told_at, now)
    if period is None:
        return None
    return f"this plan's date ({period.label}) has passed: it was told as ahead, read it as past"
