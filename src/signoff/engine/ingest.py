"""Turning what a finished task run left behind into tracking rows and model versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from signoff.domain.ports import Store
from signoff.domain.records import MetricRecord, ModelVersionRecord, RunRecord, TaskRunRecord
from signoff.errors import SignoffError
from signoff.registry.flavors import folder_digest, read_meta
from signoff.tracking.records import parse_records, parse_stdout

__all__ = ["ingest_outputs"]


def ingest_outputs(
    store: Store, run: RunRecord, tr: TaskRunRecord, *, now: float, new_id: Callable[[], str]
) -> None:
    """Record params, metrics and tags a task run logged, and register the models it saved."""
    work = Path(tr.work_dir)
    logged = parse_records(work / "records.jsonl")
    log = work / "stdout.log"
    if log.is_file():
        parse_stdout(log.read_text(errors="replace").splitlines(), now, into=logged)
    if logged.problems:
        raise SignoffError("; ".join(logged.problems[:3]))
    store.record_outputs(
        tr.id,
        params=logged.params,
        metrics=[MetricRecord(tr.id, k, v, step, at) for k, v, step, at in logged.metrics],
        tags=logged.tags,
    )
    final = logged.final_metrics()
    for model in logged.models:
        folder = work / "output" / str(model["path"])
        meta = read_meta(folder)
        name = str(model["name"])
        store.add_model_version(
            ModelVersionRecord(
                id=new_id(),
                name=name,
                version=store.next_model_version(name),
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
