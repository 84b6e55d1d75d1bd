"""Reproducing a past run from its record and reporting, metric by metric, what matched."""

from __future__ import annotations

from pathlib import Path

from signoff.domain.records import TaskRunRecord
from signoff.domain.specs import TaskKind
from signoff.engine.artifacts import folder_fingerprint
from signoff.engine.engine import Engine
from signoff.errors import SignoffError
from signoff.tracking.comparison import (
    ReproductionReport,
    compare_environments,
    compare_metrics,
)

__all__ = ["reproduce"]

# Timings differ between any two executions; they are not results.
_NOT_RESULTS = ("fit_seconds", "duration_seconds", "seconds")


def reproduce(
    engine: Engine, run_id: str, *, started_by: str, tolerance: float = 1e-9
) -> ReproductionReport:
    """Run the pinned flow again with the recorded params, seeds and code snapshot.

    Gates and deployments do not run in a reproduction. Data outputs (tasks of type
    ``data``) are compared by content; every metric is compared within ``tolerance``.
    """
    store = engine.store
    original = store.get_run(run_id)
    spec = store.get_flow(original.flow_hash)
    code = Path(original.work_dir) / "code"
    if not code.is_dir():
        raise SignoffError(f"run {original.id} has no code snapshot at {code}")
    run = engine.start_run(
        spec,
        base_dir=code,
        params=original.params,
        started_by=started_by,
        reproduces=original.id,
    )
    final = engine.drive(run.id)
    before = store.list_task_runs(original.id)
    after = store.list_task_runs(run.id)
    checks = compare_metrics(
        _final_metrics(engine, before),
        _final_metrics(engine, after),
        tolerance=tolerance,
        ignore=_NOT_RESULTS,
    )
    artifacts = []
    by_label = {tr.label: tr for tr in after}
    for tr in before:
        if tr.kind is not TaskKind.DATA or tr.label not in by_label:
            continue
        a = folder_fingerprint(store.list_artifacts(tr.id))
        b = folder_fingerprint(store.list_artifacts(by_label[tr.label].id))
        artifacts.append({"task": tr.label, "original": a, "reproduced": b, "match": a == b})
    env = compare_environments(
        original.facts.get("environment", {}), final.facts.get("environment", {})
    )
    return ReproductionReport(
        original_run=original.id,
        reproduction_run=run.id,
        state=final.state.value,
        tolerance=tolerance,
        checks=tuple(checks),
        artifacts=tuple(artifacts),
        environment=tuple(env),
    )


def _final_metrics(engine: Engine, trs: list[TaskRunRecord]) -> dict[str, dict[str, float]]:
    labels = {tr.id: tr.label for tr in trs if tr.kind.runs_command}
    final: dict[str, dict[str, float]] = {label: {} for label in labels.values()}
    for m in engine.store.list_metrics(list(labels)):
        final[labels[m.task_run_id]][m.key] = m.value
    return final
