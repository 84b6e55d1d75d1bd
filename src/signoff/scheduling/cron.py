"""Cron math in a time zone, across daylight-saving changes (pure: no clock, no I/O).

A cron line is read in wall-clock time of its IANA time zone. croniter walks the wall clock
(naive times, where no hour is missing or repeated); each wall-clock time is then placed on
the real time line:

- **spring forward**: a time that does not exist that day (02:30 when clocks jump from 02:00
  to 03:00) fires at the first instant after the jump (03:00 new time), once;
- **fall back**: a time that happens twice (02:30 when clocks go back from 03:00 to 02:00)
  fires once, at its first occurrence, unless the hour field is ``*`` or ``*/n``: a line that
  runs every hour follows elapsed time and fires at both occurrences.

Fire times are returned as aware UTC datetimes, strictly increasing, without duplicates.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from croniter import croniter

__all__ = ["fire_times", "is_hourly", "next_fire_times", "place", "zone"]

# How far a zone's offset moves at one change, at most (2h in practice; historical oddities
# beyond this are not supported).
_SHIFT = timedelta(hours=3)
_SEARCH_CAP = 1_000_000  # cron steps walked for one query, at most


def zone(name: str) -> tzinfo:
    """The time zone named ``name`` (``UTC`` and IANA names)."""
    return UTC if name in ("UTC", "Etc/UTC") else ZoneInfo(name)


def is_hourly(cron: str) -> bool:
    """Whether the hour field is ``*`` or ``*/n``: such a line follows elapsed time."""
    fields = cron.split()
    return len(fields) >= 2 and (fields[1] == "*" or fields[1].startswith("*/"))


def _offset(tz: tzinfo, at: datetime) -> timedelta:
    offset = at.astimezone(tz).utcoffset()
    return offset if offset is not None else timedelta(0)


def place(wall: datetime, tz: tzinfo, *, both_folds: bool) -> list[datetime]:
    """The UTC instants at which a naive wall-clock time happens in ``tz`` (see the module).

    One instant normally; the first instant after the jump for a time in a spring-forward
    gap; for a time repeated by a fall-back, the first occurrence, or both when
    ``both_folds``.
    """
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    u0, u1 = first.astimezone(UTC), second.astimezone(UTC)
    if u0 == u1:
        return [u0]
    if u0.astimezone(tz).replace(tzinfo=None) != wall:  # no such wall time: a gap
        return [_gap_end(tz, min(u0, u1), max(u0, u1))]
    return [u0, u1] if both_folds else [u0]


def _gap_end(tz: tzinfo, low: datetime, high: datetime) -> datetime:
    """The instant the clock jumped (the offset changes between ``low`` and ``high``)."""
    before = _offset(tz, low)
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if _offset(tz, mid) == before:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


def _walk(cron: str, tz: tzinfo, after: datetime) -> Iterator[datetime]:
    """Every fire instant after ``after`` (UTC), in increasing order, each once."""
    both = is_hourly(cron)
    start = (after.astimezone(tz) - _SHIFT).replace(tzinfo=None)
    walker = croniter(cron, start)
    pending: list[datetime] = []
    last: datetime | None = None
    for _ in range(_SEARCH_CAP):
        try:
            wall = walker.get_next(datetime)
        except ValueError:  # croniter's "failed to find next date": the line never fires
            break
        for instant in place(wall, tz, both_folds=both):
            heapq.heappush(pending, instant)
        # a later wall time never lands more than one offset shift before this one
        horizon = wall.replace(tzinfo=UTC) - _offset(tz, wall.replace(tzinfo=UTC)) - _SHIFT
        while pending and pending[0] <= horizon:
            instant = heapq.heappop(pending)
            if instant > after and instant != last:
                last = instant
                yield instant
    while pending:
        instant = heapq.heappop(pending)
        if instant > after and instant != last:
            last = instant
            yield instant


def fire_times(
    cron: str,
    timezone: str,
    *,
    after: datetime,
    until: datetime,
    limit: int = 1000,
) -> list[datetime]:
    """Fire instants ``t`` with ``after < t <= until`` (UTC), oldest first, at most ``limit``."""
    found: list[datetime] = []
    for instant in _walk(cron, zone(timezone), after):
        if instant > until or len(found) >= limit:
            break
        found.append(instant)
    return found


def next_fire_times(cron: str, timezone: str, *, after: datetime, n: int = 3) -> list[datetime]:
    """The next ``n`` fire instants strictly after ``after`` (UTC)."""
    found: list[datetime] = []
    for instant in _walk(cron, zone(timezone), after):
        found.append(instant)
        if len(found) >= n:
            break
    return found
