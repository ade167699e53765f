"""The periods and the 'latest' that questions name, for search's time signal."""

from datetime import UTC, date, datetime

import pytest

from openmemory_core.text.dates import (
    asks_for_latest,
    asks_when,
    event_named,
    ordered_period,
    query_period,
    resolve_dates,
    season_period,
    tells_time,
    week_period,
)

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


@pytest.mark.parametrize(
    ("text", "at", "said", "day"),
    [
        # "last summer" said in November is this year's summer (it used to be the year before)
        ("We went to Spain last summer.", datetime(2022, 11, 10, tzinfo=UTC),
         "We went to Spain in summer 2022.", date(2022, 7, 1)),
        # said while a summer is under way, it is the one before
        ("We went to Spain last summer.", datetime(2022, 7, 10, tzinfo=UTC),
         "We went to Spain in summer 2021.", date(2021, 7, 1)),
        ("We ski next winter.", datetime(2022, 11, 10, tzinfo=UTC),
         "We ski in winter 2022.", date(2023, 1, 1)),
        ("Next spring I plant roses.", datetime(2022, 2, 1, tzinfo=UTC),
         "In spring 2022 I plant roses.", date(2022, 4, 1)),
    ],
)  # fmt: skip
def test_a_season_is_the_one_its_words_mean_at_the_time_said(
    text: str, at: datetime, said: str, day: date
) -> None:
    resolved = resolve_dates(text, at)
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


# ---- seasons, weeks, before and after -----------------------------------------------------------------


def _days(period: tuple[datetime, datetime] | None) -> tuple[str, str]:
    assert period is not None
    return period[0].date().isoformat(), period[1].date().isoformat()


@pytest.mark.parametrize(
    ("question", "first", "last"),
    [
        ("What state did Joanna visit in summer 2021?", "2021-06-01", "2021-08-31"),
        ("What did we plant in the spring of 2023?", "2023-03-01", "2023-05-31"),
        ("Where did I ski in winter 2022?", "2022-12-01", "2023-02-28"),  # December into the next year
        ("What did I read in the fall of 2024?", "2024-09-01", "2024-11-30"),
        ("Where did I go last summer?", "2026-06-01", "2026-08-31"),  # NOW is 22 November 2026
        ("What do I plan for next spring?", "2027-03-01", "2027-05-31"),
        ("What did I do in the autumn?", "2026-09-01", "2026-11-30"),  # the one under way
        ("What did I do in the spring?", "2026-03-01", "2026-05-31"),  # the last one
        ("What did I do last autumn?", "2025-09-01", "2025-11-30"),  # this one is not over
        ("What did I do this winter?", "2025-12-01", "2026-02-28"),
    ],
)
def test_a_season_becomes_its_meteorological_months(question: str, first: str, last: str) -> None:
    assert _days(season_period(question, NOW)) == (first, last)


def test_no_season_when_none_is_named() -> None:
    assert season_period("What did I springboard into?", NOW) is None
    assert season_period("When did Melanie go camping?", NOW) is None


@pytest.mark.parametrize(
    ("question", "first", "last"),
    [
        ("What did I do the week of 3 May 2023?", "2023-05-01", "2023-05-07"),  # Monday to Sunday
        ("Who visited during the week of May 7, 2023?", "2023-05-01", "2023-05-07"),
        ("Which country was Tim visiting in the second week of November 2023?", "2023-11-08", "2023-11-14"),
        ("What happened in the first week of March?", "2026-03-01", "2026-03-07"),
        ("What happened in the last week of February 2024?", "2024-02-23", "2024-02-29"),
        ("What happened in the third week of December?", "2025-12-15", "2025-12-21"),  # not yet this year
    ],
)
def test_a_named_week_becomes_seven_days(question: str, first: str, last: str) -> None:
    assert _days(week_period(question, NOW)) == (first, last)


def test_no_week_when_none_is_named() -> None:
    assert week_period("What did I do last week?", NOW) is None  # a relative week: query_period's
    assert week_period("What did I do on 3 May 2023?", NOW) is None


@pytest.mark.parametrize(
    ("question", "first", "last"),
    [
        ("What did I buy before 3 May 2023?", "1900-01-01", "2023-05-03"),
        ("What did I buy after May 3, 2023?", "2023-05-03", "2200-01-01"),
        ("What did Maria get two weeks before August 11, 2023?", "2023-07-21", "2023-08-11"),
        ("What did John do the week before August 3, 2023?", "2023-07-20", "2023-08-03"),
        ("What did I do the day after 2023-05-03?", "2023-05-03", "2023-05-04"),
        ("What did I do until 1 June 2023?", "1900-01-01", "2023-06-01"),
    ],
)
def test_before_and_after_a_date_become_a_period_that_includes_the_day(
    question: str, first: str, last: str
) -> None:
    assert _days(ordered_period(question)) == (first, last)


def test_no_order_without_a_date() -> None:
    assert ordered_period("What did I do after the roadtrip?") is None
    assert ordered_period("What did I buy on 3 May 2023?") is None


def test_an_event_named_in_place_of_a_date() -> None:
    assert event_named("When did Melanie go on a hike after the roadtrip?") == ("after", "the roadtrip")
    assert event_named("What did Jean go through before meeting Maria?") == ("before", "meeting Maria")
    assert event_named("What did I buy after 3 May 2023?") is None  # a date: ordered_period
    assert event_named("What did I do after 2020?") is None
    assert event_named("Where do I live?") is None
