"""Reading what a finished task run left behind: logged values, artifacts, model versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from signoff.domain.ports_execution import ArtifactStore
from signoff.domain.records import (
    MetricRecord,
    ModelVersionRecord,
    RunRecord,
    TaskOutputs,
    TaskRunRecord,
)
from signoff.engine.artifacts import collect_artifacts
from signoff.errors import SignoffError
from signoff.registry.flavors import folder_digest, read_meta
from signoff.tracking.records import parse_records, parse_stdout

__all__ = ["read_outputs"]


def read_outputs(
    run: RunRecord,
    tr: TaskRunRecord,
    *,
    now: float,
    new_id: Callable[[], str],
    artifacts: ArtifactStore,
) -> TaskOutputs:
    """Everything to record with a task run's success (written in that same transaction).

    Model versions are numbered by the store when it writes them.
    """
    work = Path(tr.work_dir)
    logged = parse_records(work / "records.jsonl")
    log = work / "stdout.log"
    if log.is_file() and log.stat().st_size:
        with log.open(errors="replace") as f:
            parse_stdout(f, now, into=logged)
    if logged.problems:
        raise SignoffError("; ".join(logged.problems[:3]))
    final = logged.final_metrics()
    models = []
    for model in logged.models:
        folder = work / "output" / str(model["path"])
        meta = read_meta(folder)
        models.append(
            ModelVersionRecord(
                id=new_id(),
                name=str(model["name"]),
                version=0,
                flavor=meta.flavor,
                path=str(folder),
                digest=folder_digest(folder),
                signature=[{"name": f.name, "dtype": f.dtype} for f in meta.signature],
                metrics=final,
                params={**tr.params, **logged.params},
                run_id=run.id,
                task_run_id=tr.id,
                created_at=now,
            )
        )
    return TaskOutputs(
        params=logged.params,
        metrics=[MetricRecord(tr.id, k, v, step, at) for k, v, step, at in logged.metrics],
        tags=logged.tags,
        artifacts=collect_artifacts(work / "output", tr.id, artifacts),
        models=models,
    )
