"""Store part for what task runs logged and produced: params, tags, metrics, artifacts, models,
and the cache of succeeded task runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from signoff.domain.records import ArtifactRecord, MetricRecord, TaskOutputs, TaskRunRecord
from signoff.domain.states import TaskRunState
from signoff.store import _rows as rows
from signoff.store import _tables as t
from signoff.store._base import SqlBase

__all__ = ["TrackingStore", "write_outputs"]


class TrackingStore(SqlBase):
    """Logged params and tags, metric series, artifacts, and cache look-ups."""

    def record_outputs(
        self,
        task_run_id: str,
        *,
        params: Mapping[str, Any],
        metrics: Sequence[MetricRecord],
        tags: Mapping[str, str],
    ) -> None:
        outputs = TaskOutputs(params=dict(params), metrics=list(metrics), tags=dict(tags))
        with self._tx() as conn:
            write_outputs(conn, task_run_id, outputs)

    def list_artifacts(self, task_run_id: str) -> list[ArtifactRecord]:
        q = (
            sa.select(t.artifacts)
            .where(t.artifacts.c.task_run_id == task_run_id)
            .order_by(t.artifacts.c.path)
        )
        return rows.ARTIFACT.many(self._all(q))

    def find_cached(self, cache_key: str) -> TaskRunRecord | None:
        """The latest succeeded task run with this cache key, if any."""
        q = (
            sa.select(t.task_runs)
            .where(
                t.task_runs.c.cache_key == cache_key,
                t.task_runs.c.state == TaskRunState.SUCCEEDED.value,
            )
            .order_by(t.task_runs.c.ended_at.desc())
            .limit(1)
        )
        found = self._all(q)
        return rows.TASK_RUN(found[0]) if found else None

    def list_metrics(self, task_run_ids: Sequence[str]) -> list[MetricRecord]:
        if not task_run_ids:
            return []
        q = (
            sa.select(t.metrics)
            .where(t.metrics.c.task_run_id.in_(list(task_run_ids)))
            .order_by(t.metrics.c.id)
        )
        return rows.METRIC.many(self._all(q))

    def _logged(self, task_run_id: str, kind: str) -> dict[str, Any]:
        q = sa.select(t.logged).where(
            t.logged.c.task_run_id == task_run_id, t.logged.c.kind == kind
        )
        return {r.key: r.value for r in self._all(q)}

    def logged_params(self, task_run_id: str) -> dict[str, Any]:
        return self._logged(task_run_id, "param")

    def logged_tags(self, task_run_id: str) -> dict[str, str]:
        return {k: str(v) for k, v in self._logged(task_run_id, "tag").items()}


def write_outputs(
    conn: Connection, task_run_id: str, outputs: TaskOutputs, *, replace: bool = True
) -> None:
    """Write a task run's outputs inside the caller's transaction."""
    if replace:  # a retried or re-run task replaces what an earlier attempt wrote
        conn.execute(t.logged.delete().where(t.logged.c.task_run_id == task_run_id))
        conn.execute(t.metrics.delete().where(t.metrics.c.task_run_id == task_run_id))
        conn.execute(t.artifacts.delete().where(t.artifacts.c.task_run_id == task_run_id))
    logged = [
        {"task_run_id": task_run_id, "kind": "param", "key": k, "value": v}
        for k, v in outputs.params.items()
    ] + [
        {"task_run_id": task_run_id, "kind": "tag", "key": k, "value": v}
        for k, v in outputs.tags.items()
    ]
    if logged:
        conn.execute(t.logged.insert(), logged)
    if outputs.metrics:
        conn.execute(
            t.metrics.insert(),
            [{**dataclasses.asdict(m), "task_run_id": task_run_id} for m in outputs.metrics],
        )
    if outputs.artifacts:
        conn.execute(t.artifacts.insert(), [dataclasses.asdict(a) for a in outputs.artifacts])
    for model in outputs.models:
        # Numbered here, inside the writing transaction, so concurrent runs never collide
        # on SQLite (one writer) and retry on PostgreSQL (unique name+version).
        current = conn.execute(
            sa.select(sa.func.max(t.model_versions.c.version)).where(
                t.model_versions.c.name == model.name
            )
        ).scalar()
        values = dataclasses.asdict(model)
        values["version"] = int(current or 0) + 1
        conn.execute(t.model_versions.insert().values(**values))
