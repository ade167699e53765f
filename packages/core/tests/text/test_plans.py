"""Which memories are plans for a date, and when that date has passed."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from openmemory_core.text.plans import passed_plan, plan_note, planned_period

TOLD = datetime(2026, 2, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("User planned a trip to Rome for 5 March 2026", date(2026, 3, 5), date(2026, 3, 5)),
        ("User is planning a trip in the week of 2 March 2026", date(2026, 3, 2), date(2026, 3, 8)),
        ("User will visit Anna on March 7, 2026", date(2026, 3, 7), date(2026, 3, 7)),
        (
            "User has a dentist appointment on 2026-06-03",
            date(2026, 6, 3),
            date(2026, 6, 3),
        ),  # ahead when told
        ("User plans to see Japan in summer 2026", date(2026, 6, 1), date(2026, 8, 31)),
        ("User is going to Paris in May 2026", date(2026, 5, 1), date(2026, 5, 31)),
        ("User will retire in 2030", date(2030, 1, 1), date(2030, 12, 31)),
        ("I'm going to Rome tomorrow", date(2026, 2, 2), date(2026, 2, 2)),  # verbatim: read against TOLD
    ],
)
def test_dated_plans_and_their_periods(text: str, start: date, end: date) -> None:
    period = planned_period(text, TOLD)
    assert period is not None and (period.start, period.end) == (start, end)


@pytest.mark.parametrize(
    "text",
    [
        "User went to Rome on 5 January 2026",  # a past event, told as past
        "User moved to Porto in 2026",  # the year it was told in, no plan words
        "User was born on 5 March 1990",
        "User is planning a trip to Rome in May",  # no year: no date to pass
        "User is planning a trip to Rome",
        "User will " + "plan " * 600 + "on 5 March 2026",  # a pasted document is not a plan
    ],
)
def test_not_dated_plans(text: str) -> None:
    assert planned_period(text, TOLD) is None


def test_a_plan_has_passed_only_after_its_whole_period() -> None:
    text = "User is planning a trip in the week of 2 March 2026"
    assert passed_plan(text, TOLD, datetime(2026, 3, 8, 23, tzinfo=UTC)) is None  # its last day
    assert passed_plan(text, TOLD, datetime(2026, 3, 9, tzinfo=UTC)) is not None
    note = plan_note("User planned a trip to Rome for 5 March 2026", TOLD, datetime(2026, 3, 6, tzinfo=UTC))
    assert note is not None and note.startswith("this plan's date (2026-03-05) has passed")


@pytest.mark.parametrize(
    "text",
    [
        "I'm going to Rome next Friday",
        "We fly the week after next",
        "I will see her in three months",
        "I am going to fly to Oslo this evening",
        "I'm visiting my parents next summer",
        "User is planning a party on 12 June 2026",
        "User will start at Acme tomorrow",
        "I'll finish the course in two weeks",
    ],
)
def test_the_quick_test_lets_every_relative_or_absolute_date_through(text: str) -> None:
    # what `resolve_dates` turns into a date holds one of the words the quick test looks for, so
    # the test never hides a plan: these are plans, and each is found
    from openmemory_core.text.plans import MAY_NAME_A_TIME

    assert MAY_NAME_A_TIME.search(text) and planned_period(text, TOLD) is not None


def test_a_text_without_any_time_word_is_not_resolved() -> None:
    from openmemory_core.text.plans import MAY_NAME_A_TIME

    assert MAY_NAME_A_TIME.search("User is planning a trip to Rome with Anna") is None
