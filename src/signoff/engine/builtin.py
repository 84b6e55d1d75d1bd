"""Tasks signoff runs itself: ``select``, ``human_validation`` (opening a gate), ``deploy``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from signoff.domain.ports import Clock, Store
from signoff.domain.ports_execution import ArtifactStore
from signoff.domain.records import (
    AuditEvent,
    GateRecord,
    RunRecord,
    TaskRunRecord,
)
from signoff.domain.selection import Candidate, rank_candidates
from signoff.domain.specs import FlowSpec, TaskSpec
from signoff.engine.champion import SelectionRefusedError, check_champion
from signoff.errors import SignoffError
from signoff.report.report import write_report

__all__ = ["model_under_review", "open_gate", "select"]


def _upstream_runs(
    store: Store, spec: FlowSpec, task: TaskSpec, run_id: str
) -> list[TaskRunRecord]:
    trs = store.list_task_runs(run_id)
    return [tr for tr in trs if tr.task_name in task.depends_on]


def select(
    store: Store, run: RunRecord, spec: FlowSpec, task: TaskSpec, tr: TaskRunRecord
) -> dict[str, Any]:
    """Pick the champion among the upstream task runs (every grid combination) by conditions."""
    upstream = _upstream_runs(store, spec, task, run.id)
    metrics = store.list_metrics([u.id for u in upstream])
    final: dict[str, dict[str, float]] = {}
    for m in metrics:
        final.setdefault(m.task_run_id, {})[m.key] = m.value
    candidates = [
        Candidate(u.id, u.label, order, final.get(u.id, {})) for order, u in enumerate(upstream)
    ]
    ranking = rank_candidates(task.conditions, candidates)
    by_id = {u.id: u for u in upstream}
    leaderboard = [
        {
            "task_run_id": c.task_run_id,
            "label": c.label,
            "task": by_id[c.task_run_id].task_name,
            "params": by_id[c.task_run_id].params,
            "metrics": dict(c.metrics),
            "eligible": eligible,
            "note": note,
        }
        for c, eligible, note in ranking.rows
    ]
    winner = ranking.winner
    if winner is None:
        notes = "; ".join(f"{row['label']}: {row['note']}" for row in leaderboard)
        raise SignoffError(f"no eligible candidate ({notes})")
    models = store.model_versions_of(winner.task_run_id)
    comparison = None
    if task.champion_check is not None and models:
        partial = {
            "winner": winner.task_run_id,
            "winner_label": winner.label,
            "ranked_by": task.conditions[0].tag_key,
            "leaderboard": leaderboard,
            "model_version_id": models[-1].id,
        }
        try:
            comparison = check_champion(store, run, task, tr, by_id[winner.task_run_id], models[-1])
        except SelectionRefusedError as exc:
            exc.result = {**partial, "comparison": exc.result}
            raise
    if models and not run.facts.get("reproduces"):
        store.set_alias(
            models[-1].name,
            "challenger",
            models[-1].id,
            actor=run.started_by,
            at=tr.started_at or run.created_at,
            reason=f"picked by {task.name} in run {run.id} ({winner.label})",
        )
    out = Path(tr.work_dir)
    out.mkdir(parents=True, exist_ok=True)
    link = out / "output"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(Path(by_id[winner.task_run_id].work_dir) / "output")
    return {
        "winner": winner.task_run_id,
        "winner_label": winner.label,
        "ranked_by": task.conditions[0].tag_key,
        "leaderboard": leaderboard,
        "model_version_id": models[-1].id if models else None,
        **({"comparison": comparison} if comparison is not None else {}),
    }


def model_under_review(store: Store, spec: FlowSpec, task: TaskSpec, run_id: str) -> str | None:
    """The model version a gate (or deploy) is about: nearest upstream select or model."""
    trs = store.list_task_runs(run_id)
    frontier = list(task.depends_on)
    seen: set[str] = set()
    while frontier:
        name = frontier.pop(0)
        if name in seen:
            continue
        seen.add(name)
        ups = [tr for tr in trs if tr.task_name == name]
        for up in ups:
            if up.result.get("model_version_id"):
                return str(up.result["model_version_id"])
        if len(ups) == 1:
            models = store.model_versions_of(ups[0].id)
            if models:
                return models[-1].id
        frontier.extend(spec.task(name).depends_on)
    return None


def open_gate(
    store: Store,
    clock: Clock,
    run: RunRecord,
    spec: FlowSpec,
    task: TaskSpec,
    tr: TaskRunRecord,
    new_id: Callable[[], str],
    artifacts: ArtifactStore | None = None,
) -> tuple[GateRecord, TaskRunRecord]:
    """Open the approval request: record the policy, the model digest and the report digest.

    With an artifact store, the report's files are stored there under their digests.
    """
    policy = task.gate
    if policy is None:  # pragma: no cover - the loader guarantees a policy
        raise SignoffError(f"task {task.name} has no gate policy")
    now = clock.now()
    model_id = model_under_review(store, spec, task, run.id)
    model = store.get_model_version(model_id) if model_id else None
    report_json, report_digest = write_report(
        store, run, spec, model, Path(tr.work_dir), now, artifacts
    )
    gate = GateRecord(
        id=new_id(),
        run_id=run.id,
        task_run_id=tr.id,
        targets=policy.targets,
        quorum=policy.quorum,
        allow_self_approval=policy.allow_self_approval,
        require_comment_on_reject=policy.require_comment_on_reject,
        started_by=run.started_by,
        model_version_id=model.id if model else None,
        model_digest=model.digest if model else None,
        report_digest=report_digest,
        report_path=str(report_json),
        opened_at=now,
        expires_at=now + policy.timeout_seconds,
    )
    opened = AuditEvent(
        "gate_opened",
        run.id,
        gate.id,
        run.started_by,
        {
            "targets": list(gate.targets),
            "quorum": gate.quorum,
            "model_digest": gate.model_digest,
            "report_digest": gate.report_digest,
            "expires_at": gate.expires_at,
        },
    )
    moved = store.open_gate(
        gate,
        tr,
        at=now,
        audit=[opened],
        policy={
            "on_timeout": policy.on_timeout,
            "remind_every": policy.remind_every_seconds,
            "supersede": policy.supersede,
            "auto_approve_if": policy.auto_approve_if,
        },
    )
    return gate, moved
