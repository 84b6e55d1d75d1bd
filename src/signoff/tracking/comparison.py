"""Comparing task runs: side by side (``signoff compare``) and original vs reproduction."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MetricCheck", "ReproductionReport", "compare_environments", "compare_metrics"]


@dataclass(frozen=True, slots=True)
class MetricCheck:
    """One metric of one task: the original value, the reproduced one, and whether they match."""

    task: str
    metric: str
    original: float | None
    reproduced: float | None
    match: bool


@dataclass(frozen=True, slots=True)
class ReproductionReport:
    """How a reproduction compares with the run it reproduces."""

    original_run: str
    reproduction_run: str
    state: str
    tolerance: float
    checks: tuple[MetricCheck, ...]
    artifacts: tuple[dict[str, Any], ...] = ()
    environment: tuple[dict[str, Any], ...] = field(default=())

    @property
    def exact(self) -> bool:
        """Every metric matched and every compared artifact is identical."""
        return (
            self.state == "succeeded"
            and all(c.match for c in self.checks)
            and all(a["match"] for a in self.artifacts)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "original_run": self.original_run,
            "reproduction_run": self.reproduction_run,
            "state": self.state,
            "tolerance": self.tolerance,
            "reproduced": self.exact,
            "metrics": [
                {
                    "task": c.task,
                    "metric": c.metric,
                    "original": c.original,
                    "reproduced": c.reproduced,
                    "match": c.match,
                }
                for c in self.checks
            ],
            "artifacts": list(self.artifacts),
            "environment_differences": list(self.environment),
        }


def _close(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


def compare_metrics(
    original: Mapping[str, Mapping[str, float]],
    reproduced: Mapping[str, Mapping[str, float]],
    *,
    tolerance: float,
    ignore: Sequence[str] = (),
) -> list[MetricCheck]:
    """Task by task (by label), metric by metric: equal within a relative tolerance."""
    checks = []
    for task in sorted(set(original) | set(reproduced)):
        a, b = original.get(task, {}), reproduced.get(task, {})
        for metric in sorted(set(a) | set(b)):
            if metric in ignore:
                continue
            va, vb = a.get(metric), b.get(metric)
            match = va is not None and vb is not None and _close(va, vb, tolerance)
            checks.append(MetricCheck(task, metric, va, vb, match))
    return checks


def compare_environments(
    original: Mapping[str, Any], reproduced: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """What differs between two recorded environments (python, platform, packages)."""
    if not original:
        return [{"what": "environment", "original": "not recorded", "now": "recorded"}]
    diffs: list[dict[str, Any]] = []
    for key in ("python", "implementation", "platform"):
        if original.get(key) != reproduced.get(key):
            diffs.append({"what": key, "original": original.get(key), "now": reproduced.get(key)})
    a = original.get("packages", {}) or {}
    b = reproduced.get("packages", {}) or {}
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            diffs.append({"what": f"package {name}", "original": a.get(name), "now": b.get(name)})
    return diffs
