"""Schedules and trigger rules given as command-line options instead of in a flow file.

They go through the flow loader itself, so this sits above :mod:`signoff.spec.loader`; the
schedule checks the loader mixes in (:mod:`signoff.spec._schedules`) stay below it.
"""

from __future__ import annotations

import json
from typing import Any

from signoff.domain.specs import ScheduleSpec, TriggerSpec
from signoff.errors import SignoffError, SpecError
from signoff.spec.loader import parse_flow

__all__ = ["parse_rules"]


def parse_rules(
    schedule: dict[str, Any] | None = None, triggers: list[dict[str, Any]] | None = None
) -> tuple[ScheduleSpec | None, tuple[TriggerSpec, ...]]:
    """Check a schedule and triggers given outside a flow file (command-line options).

    They go through the flow loader itself, as keys of a one-task flow, so the rules are
    the same; each problem is reported as ``--option: message``.
    """
    document: dict[str, Any] = {"flow": "options", "tasks": [{"title": "t", "command": "true"}]}
    if schedule is not None:
        document["schedule"] = schedule
    if triggers:
        document["triggers"] = triggers
    try:
        spec = parse_flow(json.dumps(document), "options").spec
    except SpecError as exc:
        lines = [f"{_option(issue.field)}: {issue.message}" for issue in exc.issues]
        raise SignoffError("\n".join(lines) or "invalid options") from None
    return spec.schedule_rule, spec.triggers


def _option(field: str) -> str:
    """``schedule.timezone`` -> ``--timezone``; ``triggers[0].min_events`` -> ``--min-events``."""
    last = field.rsplit(".", 1)[-1] if "." in field else field
    if last.startswith(("schedule", "triggers")):
        return "options"
    return "--" + last.replace("_", "-")
