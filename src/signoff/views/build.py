"""Builders of the read models of flows, runs, task runs, gates and decisions.

The CLI (local mode) and the REST API call the same builders, so ``signoff show --json`` and
``GET /api/v1/runs/{id}`` cannot drift apart. Builders only read; they never change state.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from signoff.domain.gates import required_approvals
from signoff.domain.ports import Store
from signoff.domain.records import (
    ArtifactRecord,
    DecisionRecord,
    GateRecord,
    RunRecord,
    TaskRunRecord,
)
from signoff.domain.specs import FlowSpec
from signoff.domain.states import TaskRunState
from signoff.errors import NotFoundError, SpecIssue
from signoff.gates.decide import DecisionResult
from signoff.views.models import (
    CompareColumn,
    DecisionOut,
    DecisionView,
    FlowDetail,
    FlowSummary,
    FlowValidation,
    GateOut,
    GateRow,
    OutputFingerprint,
    RunDetail,
    RunGate,
    RunRow,
    RunSummary,
    SpecIssueOut,
    TaskRunOut,
)

__all__ = [
    "comparison",
    "decision_out",
    "finite",
    "flow_detail",
    "flow_summaries",
    "flow_validation",
    "gate_out",
    "open_gates",
    "output_fingerprint",
    "run_detail",
    "run_gates",
    "run_row",
    "run_summary",
    "spec_issue",
    "summary_of",
    "task_runs",
    "waiting_gates",
]

_WAITING = TaskRunState.WAITING_FOR_APPROVAL.value


def finite(values: dict[str, float]) -> dict[str, float | None]:
    """Metrics as JSON allows them: a non-finite value (a diverged loss) becomes null."""
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


# ----------------------------------------------------------------------------- flows
def spec_issue(issue: SpecIssue) -> SpecIssueOut:
    """One flow-file problem with its position."""
    return SpecIssueOut(
        file=issue.file,
        line=issue.line,
        column=issue.column,
        field=issue.field,
        message=issue.message,
    )


def flow_validation(spec: FlowSpec, warnings: Iterable[SpecIssue]) -> FlowValidation:
    """A valid flow's name, hash, canonical spec and warnings."""
    return FlowValidation(
        name=spec.name,
        spec_hash=spec.spec_hash,
        tasks=len(spec.tasks),
        spec=json.loads(spec.canonical_json()),
        warnings=[spec_issue(w) for w in warnings],
    )


def flow_summaries(runs: Iterable[RunRecord]) -> list[FlowSummary]:
    """One summary per flow name in ``runs`` (newest first): its latest run and run count."""
    latest: dict[str, RunRecord] = {}
    counts: dict[str, int] = {}
    for run in runs:
        latest.setdefault(run.flow_name, run)
        counts[run.flow_name] = counts.get(run.flow_name, 0) + 1
    return [
        FlowSummary(
            name=name,
            latest_hash=run.flow_hash,
            runs=counts[name],
            last_run_id=run.id,
            last_run_at=run.created_at,
            last_state=run.state,
        )
        for name, run in latest.items()
    ]


def flow_detail(name: str, spec: FlowSpec, recent: Iterable[RunRecord]) -> FlowDetail:
    """A flow's latest version and its recent runs."""
    return FlowDetail(
        name=name,
        latest_hash=spec.spec_hash,
        spec=json.loads(spec.canonical_json()),
        recent_runs=[run_row(r) for r in recent],
    )


# ------------------------------------------------------------------------------ runs
def _run_fields(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "flow": run.flow_name,
        "state": run.state,
        "started_by": run.started_by,
        "created_at": run.created_at,
        "ended_at": run.ended_at,
        "reason": run.reason,
    }


def run_row(run: RunRecord) -> RunRow:
    """A run in a list."""
    return RunRow(**_run_fields(run))


def _decision(d: DecisionRecord) -> DecisionView:
    return DecisionView(
        actor=d.actor, decision=d.decision, comment=d.comment, channel=d.channel, at=d.at
    )


def _gate_fields(
    gate: GateRecord, tr: TaskRunRecord, decisions: list[DecisionRecord]
) -> dict[str, Any]:
    return {
        "gate_id": gate.id,
        "task": tr.task_name,
        "state": tr.state.value,
        "targets": list(gate.targets),
        "quorum": gate.quorum,
        "model_version_id": gate.model_version_id,
        "model_digest": gate.model_digest,
        "report": gate.report_path,
        "report_html": str(Path(gate.report_path).with_suffix(".html"))
        if gate.report_path
        else None,
        "report_digest": gate.report_digest,
        "opened_at": gate.opened_at,
        "expires_at": gate.expires_at,
        "decisions": [_decision(d) for d in decisions],
    }


def run_gates(store: Store, run_id: str) -> list[RunGate]:
    """The run's gates with their state and decisions."""
    return [
        RunGate(**_gate_fields(g, store.get_task_run(g.task_run_id), store.list_decisions(g.id)))
        for g in store.gates_of_run(run_id)
    ]


def output_fingerprint(artifacts: list[ArtifactRecord]) -> OutputFingerprint:
    """What a task run produced: its files' combined sha256, count and size."""
    h = hashlib.sha256()
    for a in sorted(artifacts, key=lambda a: a.path):
        h.update(f"{a.path}\0{a.sha256}\0".encode())
    return OutputFingerprint(
        digest=h.hexdigest(), files=len(artifacts), bytes=sum(a.size for a in artifacts)
    )


def _task_run(
    store: Store,
    tr: TaskRunRecord,
    metrics: dict[str, float],
    outputs: dict[str, OutputFingerprint],
    upstream: list[TaskRunRecord],
) -> TaskRunOut:
    ran = tr.started_at is not None and tr.ended_at is not None
    return TaskRunOut(
        task_run_id=tr.id,
        task=tr.task_name,
        label=tr.label,
        kind=tr.kind.value,
        state=tr.state.value,
        attempt=tr.attempt,
        params=tr.params,
        logged_params=store.logged_params(tr.id) if tr.kind.runs_command else {},
        metrics=finite(metrics),
        reason=tr.reason,
        started_at=tr.started_at,
        ended_at=tr.ended_at,
        duration_seconds=(tr.ended_at or 0.0) - (tr.started_at or 0.0) if ran else None,
        work_dir=tr.work_dir,
        executor=_text(tr.result.get("executor")),
        node=_text(tr.result.get("node")),
        outputs=outputs.get(tr.id),
        # the data it read: each upstream output's content fingerprint
        inputs={u.label: outputs[u.id] for u in upstream if u.id in outputs},
        result=tr.result,
    )


def task_runs(store: Store, run: RunRecord, trs: list[TaskRunRecord]) -> list[TaskRunOut]:
    """Task runs with their final metrics, logged params, and the data they read and made."""
    final: dict[str, dict[str, float]] = {}
    for m in store.list_metrics([tr.id for tr in trs]):
        final.setdefault(m.task_run_id, {})[m.key] = m.value
    spec = store.get_flow(run.flow_hash)
    outputs = {
        tr.id: output_fingerprint(store.list_artifacts(tr.id)) for tr in trs if tr.kind.runs_command
    }
    by_task: dict[str, list[TaskRunRecord]] = {}
    for tr in trs:
        by_task.setdefault(tr.task_name, []).append(tr)
    views = []
    for tr in trs:
        upstream = [u for name in spec.task(tr.task_name).depends_on for u in by_task.get(name, [])]
        views.append(_task_run(store, tr, final.get(tr.id, {}), outputs, upstream))
    return views


def run_detail(store: Store, run: RunRecord) -> RunDetail:
    """Everything ``signoff show --json`` tells about a run."""
    return RunDetail(
        **_run_fields(run),
        flow_hash=run.flow_hash,
        params=run.params,
        work_dir=run.work_dir,
        facts=run.facts,
        tasks=task_runs(store, run, store.list_task_runs(run.id)),
        gates=run_gates(store, run.id),
    )


def summary_of(detail: RunDetail) -> RunSummary:
    """The short form of a run from its full form: its open gate and what it deployed."""
    return RunSummary(
        **{name: getattr(detail, name) for name in RunRow.model_fields},
        gate=next((g for g in detail.gates if g.state == _WAITING), None),
        deployments=[
            t.result
            for t in detail.tasks
            if t.state == TaskRunState.SUCCEEDED.value and "endpoint" in t.result
        ],
    )


def run_summary(store: Store, run: RunRecord) -> RunSummary:
    """The run, its open gate and the endpoints it deployed (``signoff run --json``)."""
    return summary_of(run_detail(store, run))


# ----------------------------------------------------------------------------- gates
def gate_out(store: Store, gate: GateRecord) -> GateOut:
    """A gate with its run, task run state, decisions and the approvals it needs."""
    run = store.get_run(gate.run_id)
    tr = store.get_task_run(gate.task_run_id)
    return GateOut(
        run_id=run.id,
        flow=run.flow_name,
        required=required_approvals(gate, store.groups()),
        **_gate_fields(gate, tr, store.list_decisions(gate.id)),
    )


def _waiting(store: Store) -> list[tuple[RunRecord, GateRecord, dict[str, Any]]]:
    """Each gate waiting for a decision with its run and fields, newest run first."""
    found = []
    for gate in store.waiting_gates():
        run = store.get_run(gate.run_id)
        tr = store.get_task_run(gate.task_run_id)
        found.append((run, gate, _gate_fields(gate, tr, store.list_decisions(gate.id))))
    return sorted(found, key=lambda f: (-f[0].created_at, f[1].opened_at))


def open_gates(store: Store) -> list[GateRow]:
    """Gates waiting for a decision, newest run first (``signoff gates --json``)."""
    return [GateRow(run_id=r.id, flow=r.flow_name, **fields) for r, _, fields in _waiting(store)]


def waiting_gates(store: Store) -> list[GateOut]:
    """The same gates as :func:`open_gates`, each with the approvals its policy needs."""
    groups = store.groups()
    return [
        GateOut(run_id=r.id, flow=r.flow_name, required=required_approvals(g, groups), **fields)
        for r, g, fields in _waiting(store)
    ]


# ------------------------------------------------------------------------ comparison
def _resolve_task_runs(store: Store, item: str) -> list[tuple[str, TaskRunRecord]]:
    """A run (its command tasks), a task run id, or RUN:LABEL -> (column title, task run)."""
    run_part, sep, label = item.partition(":")
    if sep:
        run = store.get_run(run_part)
        found = [
            tr for tr in store.list_task_runs(run.id) if label in (tr.label, tr.key, tr.task_name)
        ]
        if not found:
            raise NotFoundError(f"run {run.id} has no task {label!r}")
        return [(f"{tr.label}@{run.id[:6]}", tr) for tr in found]
    try:
        tr = store.get_task_run(item)
        return [(f"{tr.label}@{tr.run_id[:6]}", tr)]
    except NotFoundError:
        run = store.get_run(item)
        return [
            (f"{tr.label}@{run.id[:6]}", tr)
            for tr in store.list_task_runs(run.id)
            if tr.kind.runs_command
        ]


def comparison(store: Store, items: list[str]) -> list[CompareColumn]:
    """One column per task run: params (given and logged) and final metrics."""
    columns = []
    for item in items:
        for title, tr in _resolve_task_runs(store, item):
            metrics = {m.key: m.value for m in store.list_metrics([tr.id])}
            columns.append(
                CompareColumn(
                    column=title,
                    task_run_id=tr.id,
                    run_id=tr.run_id,
                    state=tr.state.value,
                    params={**tr.params, **store.logged_params(tr.id)},
                    metrics=finite(metrics),
                )
            )
    return columns


def decision_out(gate: GateRecord, decision: str, result: DecisionResult) -> DecisionOut:
    """What one decision did to its gate."""
    return DecisionOut(
        gate_id=gate.id,
        run_id=gate.run_id,
        decision=decision,
        gate_state=result.state.value,
        approvals=result.approvals,
        required=result.required,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
