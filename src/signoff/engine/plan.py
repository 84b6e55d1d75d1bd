"""Planning a new run: its params, one task run per grid combination, and its facts.

Pure but for reading the code version and the environment: the engine writes what this
returns in one transaction (``Store.create_run``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from signoff.domain.records import TaskRunRecord
from signoff.domain.specs import FlowSpec, ParamValue
from signoff.domain.states import TaskRunState
from signoff.engine.artifacts import code_fingerprint
from signoff.errors import SignoffError
from signoff.spec.templates import task_slug
from signoff.tracking.environment import code_version, environment

__all__ = ["check_overrides", "plan_task_runs", "resolve_flow_params", "run_facts"]


def check_overrides(spec: FlowSpec, overrides: Mapping[str, ParamValue]) -> None:
    """Refuse a param the flow does not declare."""
    known = {p.key for p in spec.params} | {p.key for t in spec.tasks for p in t.params}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SignoffError(
            f"unknown param(s) {', '.join(unknown)}; the flow declares: {', '.join(sorted(known))}"
        )


def resolve_flow_params(
    spec: FlowSpec, overrides: Mapping[str, ParamValue]
) -> dict[str, ParamValue]:
    """The flow-level params' values: the override, else the single declared value."""
    values: dict[str, ParamValue] = {}
    for p in spec.params:
        if p.key in overrides:
            values[p.key] = overrides[p.key]
        elif p.is_grid:
            raise SignoffError(
                f"flow-level param {p.key} has several values; put a grid on a task instead"
            )
        else:
            values[p.key] = p.values[0]
    return values


def plan_task_runs(
    spec: FlowSpec,
    run_id: str,
    run_dir: Path,
    flow_params: Mapping[str, ParamValue],
    overrides: Mapping[str, ParamValue],
    now: float,
    new_id: Callable[[], str],
) -> list[TaskRunRecord]:
    """Every task run of the new run, pending, in the flow's order (a grid fans a task out)."""
    task_runs: list[TaskRunRecord] = []
    for order, task in enumerate(spec.tasks):
        combos = task.grid(dict(overrides))
        for idx, combo in enumerate(combos):
            suffix = f"-{idx}" if len(combos) > 1 else ""
            task_runs.append(
                TaskRunRecord(
                    id=new_id(),
                    run_id=run_id,
                    task_name=task.name,
                    index=idx if len(combos) > 1 else -1,
                    kind=task.kind,
                    params={**flow_params, **combo},
                    state=TaskRunState.PENDING,
                    version=0,
                    attempt=0,
                    work_dir=str(run_dir / "tasks" / f"{task_slug(task.name)}{suffix}"),
                    created_at=now + order * 1e-6,
                )
            )
    return task_runs


def run_facts(
    base_dir: Path | None,
    code_dir: Path,
    task_runs: list[TaskRunRecord],
    *,
    reproduces: str | None,
    trigger: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What the run ran with: code version and snapshot digest, environment, seeds."""
    seeds = {
        k: v
        for tr in task_runs
        for k, v in tr.params.items()
        if "seed" in k.lower() or k.lower() == "random_state"
    }
    facts: dict[str, Any] = {
        "code": code_version(base_dir),
        "code_snapshot": code_fingerprint(code_dir),
        "environment": environment(),
        "seeds": seeds,
    }
    if reproduces is not None:
        facts["reproduces"] = reproduces
    if trigger is not None:
        facts["trigger"] = dict(trigger)
    return facts
