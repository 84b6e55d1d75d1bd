"""Cron math across daylight-saving changes, and the catch-up and overlap policies."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from signoff.domain.specs import Catchup, Overlap
from signoff.scheduling import (
    OverlapAction,
    fire_times,
    next_fire_times,
    overlap_action,
    plan_catchup,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(times: list[datetime], tz: ZoneInfo) -> list[str]:
    return [t.astimezone(tz).strftime("%m-%d %H:%M %Z") for t in times]


def between(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    return fire_times(cron, tz, after=start, until=end, limit=10_000)


# ------------------------------------------------------------------ spring forward
def test_paris_spring_forward_daily_time_in_the_gap_fires_once_right_after_the_jump() -> None:
    # 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST; 02:30 does not exist that day
    times = next_fire_times("30 2 * * *", "Europe/Paris", after=utc(2026, 3, 27), n=4)
    assert local(times, PARIS) == [
        "03-27 02:30 CET",
        "03-28 02:30 CET",
        "03-29 03:00 CEST",  # the first instant after the jump
        "03-30 02:30 CEST",
    ]
    assert times[2] == utc(2026, 3, 29, 1, 0)


def test_paris_spring_forward_hourly_follows_elapsed_time() -> None:
    times = between("0 * * * *", "Europe/Paris", utc(2026, 3, 28, 22), utc(2026, 3, 29, 3))
    assert local(times, PARIS) == [
        "03-29 00:00 CET",
        "03-29 01:00 CET",
        "03-29 03:00 CEST",  # 02:00 does not exist: one fire, not two
        "03-29 04:00 CEST",
        "03-29 05:00 CEST",
    ]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(times))


def test_new_york_spring_forward() -> None:
    # 2026-03-08: 02:00 EST -> 03:00 EDT
    times = next_fire_times("30 2 * * *", "America/New_York", after=utc(2026, 3, 7), n=3)
    assert local(times, NEW_YORK) == ["03-07 02:30 EST", "03-08 03:00 EDT", "03-09 02:30 EDT"]


def test_quarter_hours_across_the_gap_have_no_duplicates() -> None:
    times = between("*/15 * * * *", "Europe/Paris", utc(2026, 3, 29, 0), utc(2026, 3, 29, 2))
    assert times == sorted(set(times))
    assert local(times, PARIS)[:6] == [
        "03-29 01:15 CET",
        "03-29 01:30 CET",
        "03-29 01:45 CET",
        "03-29 03:00 CEST",  # 02:00, 02:15, 02:30, 02:45 and 03:00 are one instant
        "03-29 03:15 CEST",
        "03-29 03:30 CEST",
    ]


# ---------------------------------------------------------------------- fall back
def test_paris_fall_back_daily_time_in_the_repeated_hour_fires_once() -> None:
    # 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET; 02:30 happens twice
    times = next_fire_times("30 2 * * *", "Europe/Paris", after=utc(2026, 10, 23), n=4)
    assert local(times, PARIS) == [
        "10-23 02:30 CEST",
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",  # the first occurrence only
        "10-26 02:30 CET",
    ]


def test_paris_fall_back_hourly_fires_in_both_passes() -> None:
    times = between("0 * * * *", "Europe/Paris", utc(2026, 10, 24, 22), utc(2026, 10, 25, 3))
    assert local(times, PARIS) == [
        "10-25 01:00 CEST",
        "10-25 02:00 CEST",
        "10-25 02:00 CET",  # the hour happens twice, an hourly line runs twice
        "10-25 03:00 CET",
        "10-25 04:00 CET",
    ]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(times))


def test_new_york_fall_back_fixed_time_fires_once() -> None:
    # 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice
    times = next_fire_times("30 1 * * *", "America/New_York", after=utc(2026, 10, 31), n=3)
    assert local(times, NEW_YORK) == ["10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST"]


def test_weekly_line_keeps_local_time_across_the_change() -> None:
    times = next_fire_times("0 3 * * MON", "Europe/Paris", after=utc(2026, 3, 20), n=3)
    assert [t.astimezone(PARIS).hour for t in times] == [3, 3, 3]
    assert [t.hour for t in times] == [2, 1, 1]  # UTC moves by the offset


# ------------------------------------------------------------------------- general
@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/New_York", "Australia/Sydney"])
@pytest.mark.parametrize("cron", ["*/20 1-3 * * *", "30 2 * * *", "0 */5 * * *", "15 1-3 * * *"])
def test_fire_times_strictly_increase_all_year(cron: str, tz: str) -> None:
    times = between(cron, tz, utc(2026, 1, 1), utc(2027, 1, 1))
    assert times
    assert all(a < b for a, b in itertools.pairwise(times))


def test_seconds_field_and_limits() -> None:
    times = next_fire_times("* * * * * */20", "UTC", after=utc(2026, 1, 1), n=3)
    assert times == [utc(2026, 1, 1, 0, 0, 20), utc(2026, 1, 1, 0, 0, 40), utc(2026, 1, 1, 0, 1)]
    capped = fire_times("* * * * *", "UTC", after=utc(2026, 1, 1), until=utc(2026, 1, 2), limit=5)
    assert len(capped) == 5
    assert next_fire_times("0 0 31 2 *", "UTC", after=utc(2026, 1, 1), n=1) == []


def test_until_is_inclusive_and_after_exclusive() -> None:
    times = between("0 * * * *", "UTC", utc(2026, 1, 1, 1), utc(2026, 1, 1, 3))
    assert times == [utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]


# ---------------------------------------------------------------- missed ticks
NOW = utc(2026, 5, 4, 3, 0, 30)
GRACE = timedelta(seconds=60)
MISSED = [utc(2026, 5, 1, 3), utc(2026, 5, 2, 3), utc(2026, 5, 3, 3)]  # down for three days
ON_TIME = utc(2026, 5, 4, 3)


@pytest.mark.parametrize(
    ("catchup", "fire", "missed"),
    [
        (Catchup.NONE, [], MISSED),
        (Catchup.LATEST, MISSED[-1:], MISSED[:-1]),
        (Catchup.ALL, MISSED, []),
    ],
)
def test_scheduler_down_for_three_intervals(
    catchup: Catchup, fire: list[datetime], missed: list[datetime]
) -> None:
    plan = plan_catchup(MISSED, now=NOW, catchup=catchup, grace=GRACE)
    assert (list(plan.fire), list(plan.missed)) == (fire, missed)


@pytest.mark.parametrize(
    ("catchup", "fire", "missed"),
    [
        (Catchup.NONE, [ON_TIME], MISSED),
        (Catchup.LATEST, [ON_TIME], MISSED),  # the time due now stands for the missed ones
        (Catchup.ALL, [*MISSED, ON_TIME], []),
    ],
)
def test_missed_times_and_one_on_time(
    catchup: Catchup, fire: list[datetime], missed: list[datetime]
) -> None:
    plan = plan_catchup([*MISSED, ON_TIME], now=NOW, catchup=catchup, grace=GRACE)
    assert (list(plan.fire), list(plan.missed)) == (fire, missed)


@pytest.mark.parametrize("catchup", list(Catchup))
def test_a_live_scheduler_fires_every_time_whatever_the_policy(catchup: Catchup) -> None:
    batch = [NOW - timedelta(seconds=s) for s in (50, 30, 10)]  # a tick sees several times
    plan = plan_catchup(batch, now=NOW, catchup=catchup, grace=GRACE)
    assert (list(plan.fire), list(plan.missed)) == (batch, [])


# ------------------------------------------------------------------------ overlap
@pytest.mark.parametrize(
    ("policy", "busy", "action"),
    [
        (Overlap.SKIP, False, OverlapAction.START),
        (Overlap.QUEUE, False, OverlapAction.START),
        (Overlap.SUPERSEDE, False, OverlapAction.START),
        (Overlap.SKIP, True, OverlapAction.SKIP),
        (Overlap.QUEUE, True, OverlapAction.QUEUE),
        (Overlap.SUPERSEDE, True, OverlapAction.SUPERSEDE),
    ],
)
def test_overlap_policies(policy: Overlap, busy: bool, action: OverlapAction) -> None:
    assert overlap_action(policy, busy=busy) is action
