"""Reading what a task logged: the task-side records file and cnvrg's stdout convention."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LoggedOutputs", "parse_records", "parse_stdout"]

# cnvrg's convention: "cnvrg_tag_<name>: <value>" and "cnvrg_linechart_<name> value: <v>"
_CNVRG_TAG = re.compile(r"^cnvrg_tag_(?P<key>[A-Za-z0-9_.\-]+):\s*(?P<value>.*?)\s*$")
_CNVRG_LINE = re.compile(
    r"^cnvrg_linechart_(?P<key>[A-Za-z0-9_.\-]+)\s+value:\s*(?P<value>[-+0-9.eE]+|nan|inf)\s*$"
)


@dataclass(slots=True)
class LoggedOutputs:
    """Everything a task run logged, in the order it was logged."""

    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[str, float, int | None, float]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def final_metrics(self) -> dict[str, float]:
        """The last value logged of each metric."""
        return {key: value for key, value, _, _ in self.metrics}


def parse_records(path: Path, into: LoggedOutputs | None = None) -> LoggedOutputs:
    """Read a records file written by :mod:`signoff.sdk.task_api`; bad lines are reported."""
    out = into or LoggedOutputs()
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            kind = rec["kind"]
            if kind == "param":
                out.params[str(rec["key"])] = rec["value"]
            elif kind == "metric":
                out.metrics.append(
                    (str(rec["key"]), float(rec["value"]), rec.get("step"), float(rec["time"]))
                )
            elif kind == "tag":
                out.tags[str(rec["key"])] = str(rec["value"])
            elif kind == "model":
                out.models.append(rec)
            else:
                out.problems.append(f"records line {n}: unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            out.problems.append(f"records line {n}: {exc}")
    return out


def parse_stdout(
    lines: Iterable[str], at: float, into: LoggedOutputs | None = None
) -> LoggedOutputs:
    """Pick cnvrg-style tags and line-chart points out of a task's output lines."""
    out = into or LoggedOutputs()
    steps: dict[str, int] = {}
    for line in lines:
        text = line.strip()
        if not text.startswith("cnvrg_"):
            continue
        if m := _CNVRG_LINE.match(text):
            try:
                value = float(m["value"])
            except ValueError:  # the pattern admits "-" or "1e"; not a number, not a point
                continue
            if math.isfinite(value):
                key = m["key"]
                steps[key] = steps.get(key, -1) + 1
                out.metrics.append((key, value, steps[key], at))
        elif m := _CNVRG_TAG.match(text):
            key, raw = m["key"], m["value"]
            try:
                number = float(raw)
            except ValueError:
                out.tags[key] = raw
            else:
                if math.isfinite(number):
                    out.metrics.append((key, number, None, at))
                else:
                    out.tags[key] = raw
    return out
