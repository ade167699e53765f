"""Resolving the dates people type ("yesterday", "last week", "on 8 May") against the message's time.

`resolve_dates` rewrites each relative expression into an absolute date in the text (so the memory
stays true when read later) and returns the date the fact refers to.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]  # fmt: skip
_MONTH_ABBR = {m[:3]: i + 1 for i, m in enumerate(MONTHS)} | {"sept": 9}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "a few": 3, "several": 3}  # fmt: skip
_NUM = r"(\d+|a couple of|a few|several|an?|one|two|three|four|five|six|seven|eight|nine|ten)"
_UNIT = r"(day|week|month|year)s?"
_MONTH_NAME = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"


@dataclass(frozen=True)
class ResolvedDates:
    text: str
    refers_to: date | None


def _fmt(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1].capitalize()} {day.year}"


def _month_label(day: date) -> str:
    return f"{MONTHS[day.month - 1].capitalize()} {day.year}"


def _shift_months(day: date, months: int) -> date:
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    return date(year, month + 1, 1)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word.lower()]


def _ago(today: date, n: int, unit: str, sign: int) -> tuple[date, str]:
    unit = unit.lower()
    if unit == "day":
        day = today + timedelta(days=sign * n)
        return day, f"on {_fmt(day)}"
    if unit == "week":
        day = today + timedelta(weeks=sign * n)
        return day, f"in the week of {_fmt(day - timedelta(days=day.weekday()))}"
    if unit == "month":
        day = _shift_months(today, sign * n)
        return day, f"in {_month_label(day)}"
    day = date(today.year + sign * n, 1, 1)
    return day, f"in {day.year}"


def _weekday(today: date, name: str, which: str) -> date:
    target = WEEKDAYS.index(name.lower())
    delta = target - today.weekday()
    if which == "last":
        return today + timedelta(days=delta - 7 if delta >= 0 else delta)
    if which == "next":
        return today + timedelta(days=delta + 7 if delta <= 0 else delta)
    # "on Friday": the nearest one ahead, or today (people mostly speak of plans)
    return today + timedelta(days=delta if delta >= 0 else delta + 7)


def resolve_dates(text: str, at: datetime) -> ResolvedDates:
    """Replace relative dates by absolute ones; the first date found is what the fact refers to."""
    today = at.date()
    original = text
    found: list[tuple[int, date | None]] = []

    def keep(match: re.Match[str], day: date, phrase: str) -> str:
        found.append((match.start(), day))
        return phrase

    simple = {
        "today": (0, "on {d}"), "tonight": (0, "on the night of {d}"), "this morning": (0, "on the morning of {d}"),
        "this evening": (0, "on the evening of {d}"), "yesterday": (-1, "on {d}"),
        "the day before yesterday": (-2, "on {d}"), "tomorrow": (1, "on {d}"), "the day after tomorrow": (2, "on {d}"),
        "last night": (-1, "on the night of {d}"),
    }  # fmt: skip
    keys = sorted(simple, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in keys) + r")\b", re.IGNORECASE)

    def simple_sub(m: re.Match[str]) -> str:
        offset, template = simple[m.group(1).lower()]
        day = today + timedelta(days=offset)
        return keep(m, day, template.format(d=_fmt(day)))

    text = pattern.sub(simple_sub, text)

    def ago_sub(m: re.Match[str]) -> str:
        day, phrase = _ago(today, _count(m.group(1)), m.group(2), -1)
        return keep(m, day, phrase)

    text = re.sub(rf"\b{_NUM} {_UNIT} ago\b", ago_sub, text, flags=re.IGNORECASE)

    def in_sub(m: re.Match[str]) -> str:
        day, phrase = _ago(today, _count(m.group(1)), m.group(2), 1)
        return keep(m, day, phrase)

    # "in three days" is a date; "in three days a week" is how often
    rate = r"(?! (?:a|an|per|each|every) (?:day|week|month|year)\b)"
    text = re.sub(rf"\bin {_NUM} {_UNIT}\b{rate}", in_sub, text, flags=re.IGNORECASE)

    def after_next_sub(m: re.Match[str]) -> str:
        unit = m.group(1).lower()
        if unit == "weekend":
            saturday = _weekday(today, "saturday", "on") + timedelta(weeks=2)
            return keep(m, saturday, f"on the weekend of {_fmt(saturday)}")
        day, phrase = _ago(today, 2, unit, 1)
        return keep(m, day, phrase)

    # "the week after next" before "next week" reads its "next"
    text = re.sub(r"\bthe (week|weekend|month|year) after next\b", after_next_sub, text, flags=re.IGNORECASE)

    def period_sub(m: re.Match[str]) -> str:
        which, unit = m.group(1).lower(), m.group(2).lower()
        sign = {"last": -1, "next": 1, "this": 0}[which]
        if unit in WEEKDAYS:
            day = _weekday(today, unit, which if which != "this" else "on")
            return keep(m, day, f"on {_fmt(day)}")
        if unit == "weekend":
            saturday = _weekday(today, "saturday", "on") + timedelta(weeks=sign)
            if which == "last":
                saturday = _weekday(today, "saturday", "last")
            return keep(m, saturday, f"on the weekend of {_fmt(saturday)}")
        if unit in SEASONS:
            # the season as `season_period` reads it ("last summer" said in November is this year's),
            # kept as its middle month; a winter is named by the year it starts in
            start = season_period(f"{which} {unit}", datetime.combine(today, datetime.min.time(), UTC))
            if start is None:  # cannot happen: the words matched are a season's
                return m.group(0)
            first = start[0].date()
            return keep(m, _shift_months(first, 1), f"in {unit} {first.year}")
        day, phrase = _ago(today, 1, unit, sign) if sign else _ago(today, 0, unit, 1)
        return keep(m, day, phrase)

    periods = "|".join(
        [*WEEKDAYS, "weekend", "week", "month", "year", "summer", "winter", "spring", "autumn", "fall"]
    )
    text = re.sub(rf"\b(last|next|this) ({periods})\b", period_sub, text, flags=re.IGNORECASE)

    def on_weekday_sub(m: re.Match[str]) -> str:
        day = _weekday(today, m.group(1), "on")
        return keep(m, day, f"on {_fmt(day)}")

    # A day followed by another ("on Tuesday and Thursday evenings") or by a part of the day is a
    # habit, not a date.
    days = "|".join(WEEKDAYS)
    habit = rf"(?! (?:mornings|evenings|nights|afternoons)\b)(?!(?:,| and| or|/) ?(?:{days})\b)"
    text = re.sub(rf"\bon ({days})\b{habit}", on_weekday_sub, text, flags=re.IGNORECASE)

    def month_sub(m: re.Match[str]) -> str:
        which, month = m.group(1).lower(), _MONTH_ABBR[m.group(2).lower()[:3]]
        year = today.year
        if (which in ("last", "since") and month > today.month) or (which == "last" and month == today.month):
            year -= 1
        elif which == "next" and month <= today.month:
            year += 1
        day = date(year, month, 1)
        label = f"{MONTHS[month - 1].capitalize()} {year}"
        return keep(m, day, f"since {label}" if which == "since" else f"in {label}")

    text = re.sub(rf"\b(last|next|this|since) {_MONTH_NAME}\b(?! \d)", month_sub, text, flags=re.IGNORECASE)

    for m in re.finditer(
        rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?{_MONTH_NAME},? (\d{{4}})\b", text, re.IGNORECASE
    ):
        found.append(
            (m.start(), _safe(int(m.group(3)), _MONTH_ABBR[m.group(2).lower()[:3]], int(m.group(1))))
        )
    for m in re.finditer(rf"\b{_MONTH_NAME} (\d{{1,2}})(?:st|nd|rd|th)?,? (\d{{4}})\b", text, re.IGNORECASE):
        found.append(
            (m.start(), _safe(int(m.group(3)), _MONTH_ABBR[m.group(1).lower()[:3]], int(m.group(2))))
        )
    for m in re.finditer(r"\b(\d{4})-(\d{2})-(\d{2})\b", text):
        found.append((m.start(), _safe(int(m.group(1)), int(m.group(2)), int(m.group(3)))))
    for m in re.finditer(rf"\bin {_MONTH_NAME} (\d{{4}})\b", text, re.IGNORECASE):
        found.append((m.start(), _safe(int(m.group(2)), _MONTH_ABBR[m.group(1).lower()[:3]], 1)))
    for m in re.finditer(r"\b(?:in|since|back in) ((?:19|20)\d{2})\b(?! \w)", text):
        found.append((m.start(), _safe(int(m.group(1)), 1, 1)))
    dated = [(pos, day) for pos, day in found if day is not None]  # type: list[tuple[int, date]]
    if text and text[0].islower() and original[:1].isupper():
        text = text[0].upper() + text[1:]
    return ResolvedDates(text, min(dated)[1] if dated else None)


def _safe(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


# ---- periods named in a question ------------------------------------------------------------------

_DAY_MONTH_YEAR = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_NAME},?\s+(\d{{4}})\b", re.I
)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH_NAME}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_MONTH_YEAR = re.compile(rf"\b{_MONTH_NAME},?\s+(?:of\s+)?(\d{{4}})\b", re.I)
_YEAR = re.compile(r"\b(?:in|during|of|since|throughout)\s+((?:19|20)\d\d)\b", re.I)
_RELATIVE = re.compile(r"\b(yesterday|today|(?:last|this|past)\s+(?:week|month|year))\b", re.I)
_LATEST = re.compile(
    r"\b(latest|most recent(?:ly)?|recently|lately|currently|nowadays|these days|right now|at the moment|now)\b",
    re.I,
)


def _month_number(name: str) -> int:
    return _MONTH_ABBR[name.lower()[:4] if name.lower().startswith("sept") else name.lower()[:3]]


def _span(start: date, end: date) -> tuple[datetime, datetime]:
    """From the first moment of `start` to the last of `end`, in UTC."""
    return (
        datetime(start.year, start.month, start.day, tzinfo=UTC),
        datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=UTC),
    )


def query_period(text: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The period a question names, if any: a day ("on 13 October 2023", "May 3, 2023"), a month
    ("in July 2023"), a year ("in 2022"), or one relative to `now` ("yesterday", "last month")."""
    if m := _DAY_MONTH_YEAR.search(text):
        day = _safe(int(m.group(3)), _month_number(m.group(2)), int(m.group(1)))
        if day:
            return _span(day, day)
    if m := _MONTH_DAY_YEAR.search(text):
        day = _safe(int(m.group(3)), _month_number(m.group(1)), int(m.group(2)))
        if day:
            return _span(day, day)
    if m := _MONTH_YEAR.search(text):
        first = date(int(m.group(2)), _month_number(m.group(1)), 1)
        return _span(first, _shift_months(first, 1) - timedelta(days=1))
    if m := _YEAR.search(text):
        year = int(m.group(1))
        return _span(date(year, 1, 1), date(year, 12, 31))
    if m := _RELATIVE.search(text):
        return _relative_period(m.group(1).lower().split(), now.date())
    return None


def _relative_period(words: list[str], today: date) -> tuple[datetime, datetime]:
    if words == ["yesterday"]:
        return _span(today - timedelta(days=1), today - timedelta(days=1))
    if words == ["today"]:
        return _span(today, today)
    which, unit = words
    if unit == "week":
        monday = today - timedelta(days=today.weekday())
        start = monday - timedelta(weeks=1) if which == "last" else monday
        return (
            _span(today - timedelta(days=7), today) if which == "past" else _span(start, start + timedelta(6))
        )
    if unit == "month":
        first = date(today.year, today.month, 1)
        if which == "past":
            return _span(today - timedelta(days=30), today)
        start = _shift_months(first, -1) if which == "last" else first
        return _span(start, _shift_months(start, 1) - timedelta(days=1))
    if which == "past":
        return _span(today - timedelta(days=365), today)
    year = today.year - 1 if which == "last" else today.year
    return _span(date(year, 1, 1), date(year, 12, 31))


def asks_for_latest(text: str) -> bool:
    """Whether a question asks for the newest state of something ("currently", "most recent")."""
    return _LATEST.search(text) is not None


# ---- questions that ask for a time, and memories that tell one ---------------------------------------

_ASKS_WHEN = re.compile(
    r"(?:^|[,;:]\s*)when\b|\bsince when\b|\bhow long ago\b|\bhow many (?:days|weeks|months|years) ago\b"
    r"|\b(?:what|which) (?:year|month|day|date|week|weekend|season|time of (?:the )?year)\b",
    re.I,
)
_TELLS_TIME = re.compile(
    rf"\b(?:yesterday|today|tonight|tomorrow|ago|recently|lately|"
    rf"(?:last|next|this|past|coming) (?:night|morning|evening|{'|'.join(WEEKDAYS)}|weekend|week|month|year|"
    rf"summer|winter|spring|autumn|fall)|{'|'.join(WEEKDAYS)}|(?:19|20)\d\d|"
    # month names capitalised only: "may" and "march" are mostly not months
    rf"(?-i:{'|'.join(m.capitalize() for m in MONTHS)}|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec))\b",
    re.I,
)


def asks_when(text: str) -> bool:
    """Whether a question asks for a time ("When did …", "what year …", "how long ago …"), however it
    names the event."""
    return _ASKS_WHEN.search(text) is not None


def tells_time(text: str) -> bool:
    """Whether a text says when something happened: a relative day or period ("yesterday", "last
    week", "two days ago"), a weekday, a month or a year. (Cached for short texts: search asks it of
    the same memories again and again; the cache holds at most 8,192 texts of up to 2,000 characters.)"""
    return _tells_time(text) if len(text) <= _CACHED_CHARS else _TELLS_TIME.search(text) is not None


_CACHED_CHARS = 2000


@functools.lru_cache(maxsize=8192)
def _tells_time(text: str) -> bool:
    return _TELLS_TIME.search(text) is not None


# ---- more ways a question names a time: seasons, weeks, before and after ------------------------------

#: Meteorological seasons, by month: the same months whatever the hemisphere (a question says "in
#: the summer", not which summer of which hemisphere); winter runs from December into the next year.
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}  # the first month of each

_SEASON = re.compile(
    r"\b(?:(last|this|next|past)\s+)?(spring|summer|autumn|fall|winter)(?:time)?\b"
    r"(?:\s+(?:of\s+)?((?:19|20)\d\d)\b)?",
    re.I,
)
_ANY_DATE = (
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_NAME},?\s+\d{{4}}"
    rf"|{_MONTH_NAME}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}})"
)
_WEEK_OF = re.compile(rf"\bweek\s+of\s+(?:the\s+)?({_ANY_DATE})", re.I)
_NTH_WEEK = re.compile(
    rf"\b(first|second|third|fourth|last|1st|2nd|3rd|4th)\s+week\s+of\s+{_MONTH_NAME}\b(?:,?\s+(\d{{4}}))?",
    re.I,
)
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_AROUND_DATE = re.compile(
    rf"\b(?:(?:the\s+)?(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten)\s+"
    rf"(day|week|month|year)s?\s+|the\s+(day|week|weekend|month|year|{'|'.join(WEEKDAYS)})\s+)?"
    rf"(before|after|since|until|till)\s+(?:the\s+)?({_ANY_DATE})",
    re.I,
)
_AROUND_EVENT = re.compile(r"\b(before|after)\s+(?!\d)([^?.!,;]{3,80})", re.I)
#: The far ends of an open period ("before 3 May 2023": from the first of these on).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _season_start(year: int, name: str) -> date:
    return date(year, SEASONS[name], 1)


def _season_span(start: date) -> tuple[datetime, datetime]:
    return _span(start, _shift_months(start, 3) - timedelta(days=1))


def season_period(text: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The season a question names, as a date range: "in summer 2021", "the spring of 2023" (that
    year's; winter 2022 is December 2022 to February 2023), "last winter", "next spring", or "in the
    summer" alone (the one under way at `now`, else the last one)."""
    m = _SEASON.search(text)
    if m is None:
        return None
    which, name, year = (m.group(1) or "").lower(), m.group(2).lower(), m.group(3)
    if year:
        return _season_span(_season_start(int(year), name))
    today = now.date()
    # the occurrences around today, oldest first: the one that starts last year, this year and next
    starts = [_season_start(today.year + offset, name) for offset in (-2, -1, 0, 1)]
    started = [s for s in starts if s <= today]
    current = started[-1]
    under_way = _shift_months(current, 3) > today
    if which in ("last", "past"):
        return _season_span(started[-2] if under_way else current)
    if which == "next":
        return _season_span(next(s for s in starts if s > today))
    return _season_span(current)


def _date_in(text: str) -> date | None:
    """The first full date in `text` ("3 May 2023", "May 3, 2023", "2023-05-03")."""
    for pattern, order in ((_DAY_MONTH_YEAR, (3, 2, 1)), (_MONTH_DAY_YEAR, (3, 1, 2))):
        if m := pattern.search(text):
            year, month, day = (m.group(i) for i in order)
            return _safe(int(year), _month_number(month), int(day))
    if m := re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", text):
        return _safe(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return None


def week_period(text: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The week a question names: "the week of 3 May 2023" (Monday to Sunday around it), or "the
    second week of November [2023]" (days 8-14; the last week: the month's last seven days; without a
    year, the latest such month up to `now`)."""
    if m := _WEEK_OF.search(text):
        day = _date_in(m.group(1))
        if day is not None:
            monday = day - timedelta(days=day.weekday())
            return _span(monday, monday + timedelta(days=6))
    if m := _NTH_WEEK.search(text):
        month = _month_number(m.group(2))
        today = now.date()
        year = int(m.group(3)) if m.group(3) else today.year - (month > today.month)
        first = date(year, month, 1)
        last_day = _shift_months(first, 1) - timedelta(days=1)
        which = m.group(1).lower()
        if which == "last":
            return _span(last_day - timedelta(days=6), last_day)
        start = first + timedelta(weeks=_ORDINALS[which] - 1)
        return _span(start, start + timedelta(days=6))
    return None


def _units(n: int, unit: str) -> timedelta:
    return timedelta(days=n * {"day": 1, "weekend": 7, "week": 7, "month": 31, "year": 366}[unit])


def ordered_period(text: str) -> tuple[datetime, datetime] | None:
    """The time before or after a date a question names: "before 3 May 2023" (up to that day, from
    long before), "after May 3, 2023", "two weeks before August 11, 2023" (from a little more than two
    weeks before to the day: what was told on the day about two weeks ago counts), "the week before
    16 November 2023", "the Sunday before …" (the week before). Inclusive of the day itself."""
    m = _AROUND_DATE.search(text)
    if m is None:
        return None
    pivot = _date_in(m.group(5))
    if pivot is None:
        return None
    count, unit, the = m.group(1), m.group(2), m.group(3)
    span: timedelta | None = None
    if count and unit:
        span = _units(_count(count) + 1, unit.lower())
    elif the:
        span = _units(2 if the.lower() != "day" else 1, "day" if the.lower() == "day" else "week")
    start, end = _span(pivot, pivot)
    if m.group(4).lower() in ("before", "until", "till"):
        return (end - span if span else EARLIEST), end
    return start, (start + span if span else LATEST)


def event_named(text: str) -> tuple[str, str] | None:
    """("before" or "after", the event) when a question places its time against an event rather than a
    date: "after the roadtrip", "before meeting Maria"; None when it names a date (`ordered_period`)."""
    if _AROUND_DATE.search(text):
        return None
    m = _AROUND_EVENT.search(text)
    if m is None:
        return None
    event = m.group(2).strip()
    if not any(ch.isalpha() for ch in event) or _date_in(event):
        return None
    return m.group(1).lower(), event
