"""Resolving the dates people type ("yesterday", "last week", "on 8 May") against the message's time.

`resolve_dates` rewrites each relative expression into an absolute date in the text (so the memory
stays true when read later) and returns the date the fact refers to.
"""

from __future__ import annotations

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
        if unit in ("summer", "winter", "spring", "autumn", "fall"):
            year = today.year + sign
            return keep(m, date(year, {"spring": 4, "summer": 7, "autumn": 10, "fall": 10, "winter": 1}[unit], 1),
                        f"in {unit} {year}")  # fmt: skip
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
    week", "two days ago"), a weekday, a month or a year."""
    return _TELLS_TIME.search(text) is not None
