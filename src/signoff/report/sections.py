"""The report's sections as data: read from the store and the run's files, never written.

Each public function returns one section of ``report.json`` (see ``report/README.md`` for the
keys). They read only what the run recorded, so the same store state gives the same section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from signoff.domain.ports import ModelStore, RunStore
from signoff.domain.records import ModelVersionRecord, RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec, TaskKind
from signoff.errors import SignoffError
from signoff.report.datasets import artifacts_digest, describe_output
from signoff.spec.templates import render
from signoff.stats.drift import (
    BINS,
    EPSILON,
    MODERATE,
    SIGNIFICANT,
    TRAINING_SAMPLE,
    compare_samples,
    load_training_sample,
)

__all__ = [
    "Context",
    "ReportStore",
    "comparison_section",
    "data_section",
    "drift_section",
    "final_metrics",
    "leaderboards_section",
    "model_view",
    "reproducibility_section",
    "summary_section",
    "timeline_section",
    "utc",
]

#: Packages whose versions the reproducibility section names when they are installed.
KEY_PACKAGES = (
    "signoff",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "xgboost",
    "xgboost-cpu",
    "lightgbm",
    "torch",
    "skops",
    "onnx",
    "onnxruntime",
)
_NOT_HYPERPARAMETERS = frozenset({"algorithm", "features"})


def utc(seconds: float | None) -> str | None:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS UTC`` (``None`` stays ``None``)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def final_metrics(store: RunStore, task_run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """The last logged value of every metric, per task run."""
    final: dict[str, dict[str, float]] = {}
    for m in store.list_metrics(list(task_run_ids)):
        final.setdefault(m.task_run_id, {})[m.key] = m.value
    return final


class ReportStore(RunStore, ModelStore, Protocol):
    """The store roles the report reads: runs and what they logged, the model registry."""


@dataclass(frozen=True, slots=True)
class Context:
    """What every section reads: the run, its flow, its task runs, and the two models."""

    store: ReportStore
    run: RunRecord
    spec: FlowSpec
    task_runs: tuple[TaskRunRecord, ...]
    challenger: ModelVersionRecord | None
    champion: ModelVersionRecord | None

    @property
    def select(self) -> TaskRunRecord | None:
        """The select task run that picked the challenger (else the first with a leaderboard)."""
        ranked = [tr for tr in self.task_runs if tr.kind is TaskKind.SELECT and tr.result]
        if self.challenger is not None:
            for tr in ranked:
                if tr.result.get("model_version_id") == self.challenger.id:
                    return tr
        with_board = [tr for tr in ranked if "leaderboard" in tr.result]
        return with_board[0] if with_board else None

    def objectives(self) -> dict[str, str]:
        """Metric -> ``max``/``min`` from the select task's conditions, in condition order."""
        select = self.select
        if select is None:
            return {}
        try:
            conditions = self.spec.task(select.task_name).conditions
        except KeyError:
            return {}
        return {c.tag_key: c.objective for c in conditions}

    def task_run(self, task_run_id: str) -> TaskRunRecord | None:
        """A task run of this run, or of another one (a champion's), if it can be read."""
        for tr in self.task_runs:
            if tr.id == task_run_id:
                return tr
        try:
            return self.store.get_task_run(task_run_id)
        except (KeyError, SignoffError):
            return None


def _algorithm(store: RunStore, tr: TaskRunRecord | None, params: Mapping[str, Any]) -> str:
    if tr is not None:
        tags = store.logged_tags(tr.id)
        if tags.get("algorithm"):
            return tags["algorithm"]
    if params.get("algorithm"):
        return str(params["algorithm"])
    return tr.task_name if tr is not None else "unknown"


def _hyperparameters(ctx: Context, tr: TaskRunRecord | None) -> dict[str, Any]:
    """The task's own grid params and what its code logged (not algorithm or features)."""
    if tr is None:
        return {}
    try:
        own = {p.key for p in ctx.spec.task(tr.task_name).params}
    except KeyError:
        own = set()
    grid = {k: v for k, v in tr.params.items() if k in own}
    logged = ctx.store.logged_params(tr.id)
    merged = {**grid, **logged}
    return {k: merged[k] for k in sorted(merged) if k not in _NOT_HYPERPARAMETERS}


def model_view(ctx: Context, model: ModelVersionRecord | None) -> dict[str, Any] | None:
    """A model version as the report names it: label, algorithm, hyperparameters, digest."""
    if model is None:
        return None
    tr = ctx.task_run(model.task_run_id)
    return {
        "id": model.id,
        "label": model.label,
        "algorithm": _algorithm(ctx.store, tr, model.params),
        "hyperparameters": _hyperparameters(ctx, tr),
        "flavor": model.flavor,
        "digest": model.digest,
        "signature": model.signature,
        "metrics": dict(sorted(model.metrics.items())),
        "run_id": model.run_id,
        "task_run_id": model.task_run_id,
        "task": tr.label if tr is not None else None,
        "created_at": utc(model.created_at),
    }


# --- data ----------------------------------------------------------------------------------


def _command(ctx: Context, tr: TaskRunRecord) -> str | None:
    try:
        template = ctx.spec.task(tr.task_name).command
    except KeyError:
        return None
    if not template:
        return None
    work = Path(tr.work_dir)
    variables: dict[str, object] = {
        **tr.params,
        "run_id": ctx.run.id,
        "task": tr.task_name,
        "output_dir": str(work / "output"),
        "inputs": str(work / "inputs"),
    }
    try:
        return render(template, variables)
    except SignoffError:
        return template


def data_section(ctx: Context) -> list[dict[str, Any]]:
    """Each ``data`` task run: command, params, logged values and its output's fingerprint.

    ``champion_digest`` is the digest of the same task's output in the champion's run, so an
    approver sees at once whether the model is trained on new data.
    """
    champion_digests: dict[str, str] = {}
    if ctx.champion is not None and ctx.champion.run_id != ctx.run.id:
        for tr in ctx.store.list_task_runs(ctx.champion.run_id):
            if tr.kind is TaskKind.DATA:
                champion_digests[tr.label] = artifacts_digest(ctx.store.list_artifacts(tr.id))
    data = [tr for tr in ctx.task_runs if tr.kind is TaskKind.DATA]
    metrics = final_metrics(ctx.store, [tr.id for tr in data])
    sources = []
    for tr in data:
        fingerprint = describe_output(Path(tr.work_dir) / "output", ctx.store.list_artifacts(tr.id))
        earlier = champion_digests.get(tr.label)
        sources.append(
            {
                "task": tr.label,
                "state": tr.state.value,
                "command": _command(ctx, tr),
                "params": tr.params,
                "logged_params": ctx.store.logged_params(tr.id),
                "metrics": metrics.get(tr.id, {}),
                "fingerprint": fingerprint,
                "champion_digest": earlier,
                "same_as_champion": None if earlier is None else earlier == fingerprint["digest"],
            }
        )
    return sources


def drift_section(ctx: Context) -> dict[str, Any]:
    """PSI and KS per feature of the challenger's training sample against the champion's.

    ``flag`` is only there when drift was computed: a rule reading it must not take "no
    champion" or "no sample" for "no drift".
    """
    section: dict[str, Any] = {
        "computed": False,
        "reason": None,
        "reference": ctx.champion.label if ctx.champion else None,
        "method": {
            "reference": "champion's training sample",
            "bins": BINS,
            "binning": "quantiles of the champion's sample",
            "epsilon": EPSILON,
            "levels": {
                "none": f"< {MODERATE}",
                "moderate": f"{MODERATE}-{SIGNIFICANT}",
                "significant": f"> {SIGNIFICANT}",
            },
            "flag": f"any feature with PSI > {SIGNIFICANT}",
        },
        "features": [],
    }
    if ctx.challenger is None:
        section["reason"] = "no model under review"
        return section
    if ctx.champion is None:
        section["reason"] = "no champion: nothing to compare the training data with"
        return section
    current = load_training_sample(Path(ctx.challenger.path))
    reference = load_training_sample(Path(ctx.champion.path))
    missing = [
        m.label for m, s in ((ctx.challenger, current), (ctx.champion, reference)) if s is None
    ]
    if current is None or reference is None:
        section["reason"] = f"no {TRAINING_SAMPLE} beside {' and '.join(missing)}"
        return section
    result = compare_samples(reference, current)
    if not result["features"]:
        section["reason"] = "the two samples share no feature"
        return {**section, **{k: v for k, v in result.items() if k != "flag"}}
    return {**section, **result, "computed": True}


# --- candidates and comparison ----------------------------------------------------------


def leaderboards_section(ctx: Context) -> list[dict[str, Any]]:
    """Every select task's leaderboard: each grid combination with algorithm and metrics."""
    boards = []
    for tr in ctx.task_runs:
        if tr.kind is not TaskKind.SELECT or "leaderboard" not in tr.result:
            continue
        rows = []
        for rank, row in enumerate(tr.result["leaderboard"], start=1):
            candidate = ctx.task_run(str(row.get("task_run_id", "")))
            params = row.get("params", {})
            rows.append(
                {
                    "rank": rank,
                    "label": row.get("label"),
                    "task": row.get("task"),
                    "task_run_id": row.get("task_run_id"),
                    "algorithm": _algorithm(ctx.store, candidate, params),
                    "hyperparameters": _hyperparameters(ctx, candidate),
                    "metrics": row.get("metrics", {}),
                    "eligible": bool(row.get("eligible")),
                    "note": row.get("note"),
                    "winner": row.get("task_run_id") == tr.result.get("winner"),
                }
            )
        try:
            conditions = ctx.spec.task(tr.task_name).conditions
        except KeyError:
            conditions = ()
        boards.append(
            {
                "task": tr.task_name,
                "conditions": [
                    {"metric": c.tag_key, "objective": c.objective, "target": c.target}
                    for c in conditions
                ],
                "ranked_by": tr.result.get("ranked_by"),
                "winner": tr.result.get("winner_label"),
                "rows": rows,
            }
        )
    return boards


def _split_slices(metrics: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    overall = {k: v for k, v in metrics.items() if "/" not in k}
    sliced = {k: v for k, v in metrics.items() if "/" in k}
    return overall, sliced


def _better(delta: float | None, objective: str | None) -> bool | None:
    if delta is None or objective not in ("max", "min"):
        return None
    return delta > 0 if objective == "max" else delta < 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _rows(
    challenger: Mapping[str, Any], champion: Mapping[str, Any], objectives: Mapping[str, str]
) -> list[dict[str, Any]]:
    first = [k for k in objectives if k in challenger or k in champion]
    rest = sorted((set(challenger) | set(champion)) - set(first))
    rows = []
    for key in first + rest:
        a, b = _number(challenger.get(key)), _number(champion.get(key))
        delta = a - b if a is not None and b is not None else None
        base = key.split("/", 1)[0]
        objective = objectives.get(base)
        rows.append(
            {
                "metric": key,
                "challenger": a,
                "champion": b,
                "delta": delta,
                "objective": objective,
                "better": _better(delta, objective),
            }
        )
    return rows


def comparison_section(ctx: Context) -> dict[str, Any]:
    """Challenger vs champion, metric by metric and slice by slice, with deltas.

    When the select task re-evaluated both models (its result holds ``comparison``), those
    values are used; otherwise each model's own recorded metrics, from its own held-out data.
    """
    select = ctx.select
    given = select.result.get("comparison") if select is not None else None
    if isinstance(given, Mapping) and ctx.challenger is not None:
        challenger = dict(given.get("challenger") or {})
        champion = dict(given.get("champion") or {})
        source = "select"
        same = bool(given.get("same_holdout"))
    else:
        challenger = dict(ctx.challenger.metrics) if ctx.challenger else {}
        champion = dict(ctx.champion.metrics) if ctx.champion else {}
        source = "model_metrics"
        same = False
    note = (
        "both models evaluated on the same held-out data"
        if same
        else "each model's own held-out evaluation (the data may differ between runs)"
    )
    if ctx.champion is None and source == "model_metrics":
        note = "no champion to compare with"
    objectives = ctx.objectives()
    overall_a, sliced_a = _split_slices(challenger)
    overall_b, sliced_b = _split_slices(champion)
    slices = []
    for row in _rows(sliced_a, sliced_b, objectives):
        metric, _, name = row["metric"].partition("/")
        slices.append({**row, "metric": metric, "slice": name})
    slices.sort(key=lambda r: (r["metric"], r["slice"]))
    metric = given.get("metric") if isinstance(given, Mapping) else None
    if metric is None and select is not None:
        metric = select.result.get("ranked_by")
    return {
        "source": source,
        "same_holdout": same,
        "note": note,
        "metric": metric,
        "challenger": dict(sorted(challenger.items())) if ctx.challenger else None,
        "champion": dict(sorted(champion.items())) if champion else None,
        "challenger_label": ctx.challenger.label if ctx.challenger else None,
        "champion_label": ctx.champion.label if ctx.champion else None,
        "metrics": _rows(overall_a, overall_b, objectives),
        "slices": slices,
    }


# --- summary, reproducibility, timeline -------------------------------------------------


def _verdict(
    challenger: str | None, champion: str | None, headline: Mapping[str, Any], same: bool
) -> tuple[str, str]:
    metric = headline["metric"]
    a, b, delta = headline["challenger"], headline["champion"], headline["delta"]
    if challenger is None:
        return "no challenger", "No model is under review."
    if metric is None or a is None:
        return "unknown", f"{challenger} has no headline metric to judge it by."
    if champion is None:
        return "no champion", (
            f"{challenger} would be the first champion ({metric} {a:.4f}); "
            "there is no model in production to compare with."
        )
    if b is None or delta is None:
        return "unknown", f"Champion {champion} has no {metric} to compare with."
    where = "same held-out data" if same else "each on its own held-out data"
    if delta == 0:
        return "equal", f"{challenger} ties champion {champion} on {metric}: {a:.4f} ({where})."
    better = _better(delta, headline["objective"]) is not False
    verdict = "better" if better else "worse"
    verb = "beats" if better else "is worse than"
    return verdict, (
        f"{challenger} {verb} champion {champion} on {metric}: {a:.4f} vs {b:.4f} "
        f"({delta:+.4f}, {where})."
    )


def summary_section(
    ctx: Context,
    challenger: Mapping[str, Any] | None,
    comparison: Mapping[str, Any],
    drift: Mapping[str, Any],
) -> dict[str, Any]:
    """The top of the report: what is reviewed, the headline metric, the verdict, drift."""
    objectives = ctx.objectives()
    metric = comparison.get("metric")
    if metric is None and objectives:
        metric = next(iter(objectives))
    row = next((r for r in comparison["metrics"] if r["metric"] == metric), None)
    headline = {
        "metric": metric,
        "objective": objectives.get(metric or "", "max") if metric else None,
        "challenger": row["challenger"] if row else None,
        "champion": row["champion"] if row else None,
        "delta": row["delta"] if row else None,
    }
    verdict, line = _verdict(
        ctx.challenger.label if ctx.challenger else None,
        ctx.champion.label if ctx.champion else None,
        headline,
        bool(comparison["same_holdout"]),
    )
    flagged = [f["name"] for f in drift.get("features", []) if f["level"] == "significant"]
    return {
        "flow": ctx.spec.name,
        "run_id": ctx.run.id,
        "started_by": ctx.run.started_by,
        "started_at": utc(ctx.run.created_at),
        "challenger": (
            {k: challenger[k] for k in ("id", "label", "algorithm", "hyperparameters", "digest")}
            if challenger
            else None
        ),
        "champion": ctx.champion.label if ctx.champion else None,
        "headline": headline,
        "verdict": verdict,
        "verdict_line": line,
        "same_holdout": bool(comparison["same_holdout"]),
        "drift_flag": bool(drift.get("flag")),
        "drift_computed": bool(drift.get("computed")),
        "drifted_features": flagged,
    }


def reproducibility_section(ctx: Context) -> dict[str, Any]:
    """Flow hash, code version, code snapshot, environment, seeds and params of the run."""
    facts = ctx.run.facts
    env = facts.get("environment") or {}
    installed = env.get("packages") or {}
    return {
        "flow_hash": ctx.spec.spec_hash,
        "code": facts.get("code") or {},
        "code_snapshot": facts.get("code_snapshot"),
        "environment": {
            "python": env.get("python"),
            "implementation": env.get("implementation"),
            "platform": env.get("platform"),
            "lock_digest": env.get("lock_digest"),
            "packages": {p: installed[p] for p in KEY_PACKAGES if p in installed},
            "package_count": len(installed),
        },
        "seeds": facts.get("seeds") or {},
        "params": ctx.run.params,
        "reproduces": facts.get("reproduces"),
    }


def timeline_section(ctx: Context) -> list[dict[str, Any]]:
    """Every recorded state change of the run and its task runs, with UTC times."""
    labels = {tr.id: tr.label for tr in ctx.task_runs}
    return [
        {
            "at": t.at,
            "time": utc(t.at),
            "entity": t.entity,
            "what": "run" if t.entity == "run" else labels.get(t.entity_id, t.entity_id),
            "from": t.from_state,
            "to": t.to_state,
            "reason": t.reason,
            "actor": t.actor,
        }
        for t in ctx.store.list_transitions(ctx.run.id)
    ]
