"""Champion selection: rank candidates by the select task's conditions (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from signoff.domain.specs import ConditionSpec

__all__ = ["Candidate", "Ranking", "rank_candidates"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A task run that may become the champion, with its final metric values."""

    task_run_id: str
    label: str
    order: int  # position in the run, breaks exact ties (earliest wins)
    metrics: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Ranking:
    """The leaderboard, best first, and why each candidate is or is not eligible."""

    rows: tuple[tuple[Candidate, bool, str], ...]  # (candidate, eligible, note)

    @property
    def winner(self) -> Candidate | None:
        for cand, eligible, _ in self.rows:
            if eligible:
                return cand
        return None


def rank_candidates(
    conditions: Sequence[ConditionSpec], candidates: Sequence[Candidate]
) -> Ranking:
    """Order candidates by the conditions in turn; a candidate missing a target is ineligible.

    The first condition ranks; the following ones break ties; the earliest candidate wins an
    exact tie. A missing metric makes a candidate ineligible.
    """
    notes: dict[str, tuple[bool, str]] = {}
    for cand in candidates:
        notes[cand.task_run_id] = _eligibility(conditions, cand)

    def sort_key(cand: Candidate) -> tuple[object, ...]:
        key: list[object] = [0 if notes[cand.task_run_id][0] else 1]
        for cond in conditions:
            value = cand.metrics.get(cond.tag_key, math.nan)
            if math.isnan(value):
                key.append(math.inf)
            else:
                key.append(-value if cond.objective == "max" else value)
        key.append(cand.order)
        return tuple(key)

    ordered = sorted(candidates, key=sort_key)
    return Ranking(tuple((c, *notes[c.task_run_id]) for c in ordered))


def _eligibility(conditions: Sequence[ConditionSpec], cand: Candidate) -> tuple[bool, str]:
    for cond in conditions:
        value = cand.metrics.get(cond.tag_key)
        if value is None or math.isnan(value):
            return False, f"no {cond.tag_key} logged"
        if cond.target is not None:
            misses = value < cond.target if cond.objective == "max" else value > cond.target
            if misses:
                bar = ">=" if cond.objective == "max" else "<="
                return False, f"{cond.tag_key}={value:.4g} misses target {bar} {cond.target:g}"
    return True, "eligible"
