"""The scheduler's policies as pure functions: catch-up after downtime, and overlap.

``catchup`` decides which of the scheduled times that came due since the last tick fire:
a time is *on time* when it is at most ``grace`` old (a tick happens every few seconds, so a
live scheduler sees every time on time) and *missed* when it is older (the scheduler was
down or paused).

=========  ==============================================================================
none       on-time times fire; missed times are recorded as ``missed`` and never run
latest     on-time times fire; when none is on time, the most recent missed time fires
all        every due time fires, oldest first
=========  ==============================================================================

``overlap`` decides what a time that fires does while the flow has a run going (queued,
running, or waiting at its gate):

=========  ==============================================================================
skip       the time is recorded as ``skipped``; the earlier run goes on
queue      the time waits (``queued``) and starts when no run of the flow is going
supersede  the earlier run is cancelled (an open gate closes with it), then it starts
=========  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from signoff.domain.specs import Catchup, Overlap

__all__ = ["CatchupPlan", "OverlapAction", "overlap_action", "plan_catchup"]


@dataclass(frozen=True, slots=True)
class CatchupPlan:
    """Which due times fire and which are recorded as missed."""

    fire: tuple[datetime, ...]
    missed: tuple[datetime, ...]


def plan_catchup(
    due: Sequence[datetime], *, now: datetime, catchup: Catchup, grace: timedelta
) -> CatchupPlan:
    """Split the due times (oldest first) by the catch-up policy."""
    on_time = tuple(t for t in due if now - t <= grace)
    late = tuple(t for t in due if now - t > grace)
    if catchup is Catchup.ALL:
        return CatchupPlan(fire=tuple(due), missed=())
    if catchup is Catchup.LATEST and late and not on_time:
        return CatchupPlan(fire=late[-1:], missed=late[:-1])
    return CatchupPlan(fire=on_time, missed=late)


class OverlapAction(StrEnum):
    """What to do with a time that fires."""

    START = "start"  # nothing else is going: start its run
    SKIP = "skip"  # record it as skipped
    QUEUE = "queue"  # keep it waiting
    SUPERSEDE = "supersede"  # cancel the runs going, then start


def overlap_action(policy: Overlap, *, busy: bool) -> OverlapAction:
    """The action for a firing whose flow is (or is not) busy with an earlier run."""
    if not busy:
        return OverlapAction.START
    return {
        Overlap.SKIP: OverlapAction.SKIP,
        Overlap.QUEUE: OverlapAction.QUEUE,
        Overlap.SUPERSEDE: OverlapAction.SUPERSEDE,
    }[policy]
