"""The periods and the 'latest' that questions name, for search's time signal."""

from datetime import UTC, date, datetime

import pytest

from openmemory_core.text.dates import asks_for_latest, asks_when, query_period, resolve_dates, tells_time

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("question", "first", "last"),
    [
        ("What did Melanie paint on October 13, 2023?", "2023-10-13", "2023-10-13"),
        ("What did Gina find on 1 February, 2023?", "2023-02-01", "2023-02-01"),
        ("What happened on the 3rd of May 2024?", "2024-05-03", "2024-05-03"),
        ("What did Maria start in December 2023?", "2023-12-01", "2023-12-31"),
        ("What did I do in Sept 2025?", "2025-09-01", "2025-09-30"),
        ("How often did I go to the beach in 2023?", "2023-01-01", "2023-12-31"),
        ("What did I eat yesterday?", "2026-11-21", "2026-11-21"),
        ("What did I read last month?", "2026-10-01", "2026-10-31"),
        ("Who did I meet last week?", "2026-11-09", "2026-11-15"),
        ("What did I buy this year?", "2026-01-01", "2026-12-31"),
    ],
)
def test_a_named_period_becomes_a_time_range(question: str, first: str, last: str) -> None:
    period = query_period(question, NOW)
    assert period is not None
    assert (period[0].date().isoformat(), period[1].date().isoformat()) == (first, last)
    assert period[0].tzinfo is UTC and period[1].hour == 23


@pytest.mark.parametrize(
    "question", ["When did Melanie go camping?", "Where do I live?", "What may I eat?", "Call me at 2023"]
)
def test_no_period_when_none_is_named(question: str) -> None:
    assert query_period(question, NOW) is None


def test_questions_about_the_latest_state_are_recognised() -> None:
    assert asks_for_latest("What book is Jon currently reading?")
    assert asks_for_latest("What is my most recent project?")
    assert not asks_for_latest("What book did Jon read?")


@pytest.mark.parametrize(
    "text",
    [
        "I go climbing on Tuesday and Thursday evenings.",
        "We meet on Monday, Wednesday and Friday.",
        "on Friday afternoons I rest",
    ],
)
def test_recurring_days_are_a_habit_not_a_date(text: str) -> None:
    resolved_at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    resolved = resolve_dates(text, resolved_at)
    assert resolved.refers_to is None and resolved.text == text


def test_one_day_is_still_a_date() -> None:
    resolved = resolve_dates("I have a call on Friday, and then lunch.", datetime(2026, 3, 10, 9, tzinfo=UTC))
    assert resolved.refers_to == date(2026, 3, 13)


@pytest.mark.parametrize(
    ("text", "said", "day"),
    [
        ("We fly the week after next.", "We fly in the week of 23 March 2026.", date(2026, 3, 24)),
        ("The weekend after next we move.", "On the weekend of 28 March 2026 we move.", date(2026, 3, 28)),
        ("Next week I start.", "In the week of 16 March 2026 I start.", date(2026, 3, 17)),
    ],
)
def test_the_week_after_next_is_two_weeks_ahead(text: str, said: str, day: date) -> None:
    resolved_at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    resolved = resolve_dates(text, resolved_at)
    assert (resolved.text, resolved.refers_to) == (said, day)


def test_how_often_is_not_a_date() -> None:
    text = "Now we have to go in three days a week."
    resolved_at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    resolved = resolve_dates(text, resolved_at)
    assert (resolved.text, resolved.refers_to) == (text, None)
    assert resolve_dates("I start in three days.", resolved_at).refers_to == date(2026, 3, 13)


def test_a_question_asks_for_a_time_however_it_names_the_event() -> None:
    for question in [
        "When did Ana adopt a cat?",
        "Bo, when is the party?",
        "What year did you move?",
        "How long ago was the wedding?",
        "Which month was the trip in?",
        "since when do you run?",
    ]:
        assert asks_when(question), question
    for question in ["What did Ana do when it rained?", "How long have you painted?", "Where is Anna?"]:
        assert not asks_when(question), question


def test_a_text_tells_a_time_by_a_day_a_period_a_month_or_a_year() -> None:
    for text in [
        "I went yesterday!",
        "We met last Friday.",
        "Back in 2019.",
        "It was in May.",
        "two weeks ago",
        "on Sunday",
        "See you next month",
    ]:
        assert tells_time(text), text
    for text in ["I may go.", "Great job!", "Mark came over.", "I march to my own drum."]:
        assert not tells_time(text), text
