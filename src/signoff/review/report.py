"""The review report a gate opens with: what the approver judges, stored with its digest.

It is written as ``report.json`` (the record; its sha256 goes into the gate and into every
decision) and ``report.html`` (the same content, self-contained, for people).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from signoff.domain.ports import Store
from signoff.domain.records import ModelVersionRecord, RunRecord
from signoff.domain.specs import FlowSpec, TaskKind

__all__ = ["build_report", "write_report"]


def build_report(
    store: Store, run: RunRecord, spec: FlowSpec, model: ModelVersionRecord | None, now: float
) -> dict[str, Any]:
    """Gather the data, candidates, challenger vs champion and timeline of a run."""
    trs = store.list_task_runs(run.id)
    metrics = store.list_metrics([tr.id for tr in trs])
    final: dict[str, dict[str, float]] = {}
    for m in metrics:
        final.setdefault(m.task_run_id, {})[m.key] = m.value
    data = [
        {"task": tr.label, "params": tr.params, "metrics": final.get(tr.id, {})}
        for tr in trs
        if tr.kind is TaskKind.DATA
    ]
    leaderboards = [
        {
            "task": tr.task_name,
            "ranked_by": tr.result.get("ranked_by"),
            "rows": tr.result["leaderboard"],
        }
        for tr in trs
        if tr.kind is TaskKind.SELECT and "leaderboard" in tr.result
    ]
    challenger = _model_view(model) if model else None
    champion = None
    comparison: list[dict[str, Any]] = []
    if model is not None:
        current = store.aliases(model.name).get("champion")
        if current and current != model.id:
            champ = store.get_model_version(current)
            champion = _model_view(champ)
            for key, value in sorted(model.metrics.items()):
                if key in champ.metrics:
                    comparison.append(
                        {
                            "metric": key,
                            "challenger": value,
                            "champion": champ.metrics[key],
                            "delta": value - champ.metrics[key],
                        }
                    )
    timeline = [
        {"at": t.at, "what": f"{t.entity} {t.entity_id}", "from": t.from_state, "to": t.to_state}
        for t in store.list_transitions(run.id)
    ]
    return {
        "format": "signoff.review/1",
        "generated_at": now,
        "flow": {"name": spec.name, "hash": spec.spec_hash},
        "run": {"id": run.id, "started_by": run.started_by, "params": run.params},
        "data": data,
        "leaderboards": leaderboards,
        "challenger": challenger,
        "champion": champion,
        "comparison": comparison,
        "reproducibility": {
            "flow_hash": spec.spec_hash,
            "code_snapshot": str(Path(run.work_dir) / "code"),
        },
        "timeline": timeline,
    }


def _model_view(model: ModelVersionRecord) -> dict[str, Any]:
    return {
        "id": model.id,
        "label": model.label,
        "flavor": model.flavor,
        "digest": model.digest,
        "signature": model.signature,
        "params": model.params,
        "metrics": model.metrics,
        "run_id": model.run_id,
    }


_TEMPLATES = Path(__file__).parent / "templates"


def write_report(
    store: Store,
    run: RunRecord,
    spec: FlowSpec,
    model: ModelVersionRecord | None,
    folder: Path,
    now: float,
) -> tuple[Path, str]:
    """Write report.json and report.html into ``folder``; return the JSON path and its digest."""
    report = build_report(store, run, spec, model, now)
    folder.mkdir(parents=True, exist_ok=True)
    body = json.dumps(report, indent=2, sort_keys=True, default=str).encode()
    path = folder / "report.json"
    path.write_bytes(body)
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(default=True)
    )
    (folder / "report.html").write_text(env.get_template("report.html.j2").render(r=report))
    return path, hashlib.sha256(body).hexdigest()
