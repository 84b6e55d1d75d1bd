"""What the report's plots are made of: holdout scores, feature importance, candidate metrics.

Read from the files a training task leaves in its output folder: ``holdout_scores.npz``
(``y``, ``score``; loaded with ``allow_pickle=False``) and ``feature_importance.json``
(``{"importance": {feature: weight}}`` or a plain ``{feature: weight}``). A missing or
unreadable file is a note in the section, never an error. The SVGs are drawn from this data
when the HTML is rendered (``report.py``), so ``report.json`` holds the same figures.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signoff.domain.records import ModelVersionRecord
from signoff.report.sections import Context
from signoff.stats.curves import confusion_counts, pr_curve, roc_curve

__all__ = ["HOLDOUT_SCORES", "FEATURE_IMPORTANCE", "THRESHOLD", "figures_section"]

HOLDOUT_SCORES = "holdout_scores.npz"
FEATURE_IMPORTANCE = "feature_importance.json"
THRESHOLD = 0.5
_MAX_FEATURES = 15
_MAX_METRIC_CHARTS = 3


def _output_of(ctx: Context, model: ModelVersionRecord) -> Path | None:
    tr = ctx.task_run(model.task_run_id)
    return Path(tr.work_dir) / "output" if tr is not None else None


def _scores_figures(
    ctx: Context, model: ModelVersionRecord | None, role: str, notes: list[str]
) -> dict[str, Any] | None:
    if model is None:
        return None
    output = _output_of(ctx, model)
    path = output / HOLDOUT_SCORES if output is not None else None
    if path is None or not path.is_file():
        notes.append(f"no {HOLDOUT_SCORES} for the {role} {model.label}")
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            y = np.asarray(data["y"], dtype=np.float64).ravel()
            score = np.asarray(data["score"], dtype=np.float64).ravel()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        notes.append(f"cannot read {HOLDOUT_SCORES} of the {role} {model.label}: {exc}")
        return None
    keep = np.isfinite(y) & np.isfinite(score) if y.shape == score.shape else None
    if keep is None or not keep.any():
        notes.append(f"{HOLDOUT_SCORES} of the {role} {model.label} has no usable rows")
        return None
    y, score = y[keep], score[keep]
    return {
        "label": model.label,
        "rows": int(y.size),
        "positives": int(np.sum(y > 0.5)),
        "roc": roc_curve(y, score),
        "pr": pr_curve(y, score),
        "confusion": confusion_counts(y, score, THRESHOLD),
    }


def _importance(ctx: Context, model: ModelVersionRecord | None) -> dict[str, Any] | None:
    if model is None:
        return None
    output = _output_of(ctx, model)
    path = output / FEATURE_IMPORTANCE if output is not None else None
    if path is None or not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, Mapping):
        return None
    weights = raw.get("importance", raw)
    if not isinstance(weights, Mapping):
        return None
    pairs = [
        (str(k), float(v))
        for k, v in weights.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    ]
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return {
        "label": model.label,
        "algorithm": raw.get("algorithm") if isinstance(raw.get("algorithm"), str) else None,
        "features": [{"name": n, "importance": round(w, 6)} for n, w in pairs[:_MAX_FEATURES]],
    }


def _candidate_metrics(boards: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[Any]:
    charts = []
    for board in boards:
        for metric in metrics[:_MAX_METRIC_CHARTS]:
            bars = [
                {"label": row["label"], "value": row["metrics"][metric], "winner": row["winner"]}
                for row in board["rows"]
                if isinstance(row["metrics"].get(metric), int | float)
            ]
            if bars:
                charts.append({"task": board["task"], "metric": metric, "bars": bars})
    return charts


def figures_section(ctx: Context, boards: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """ROC, precision-recall and confusion data of challenger (and champion), importance bars
    of the challenger, and one bar chart per selection metric across the candidates."""
    notes: list[str] = []
    challenger = _scores_figures(ctx, ctx.challenger, "challenger", notes)
    champion = _scores_figures(ctx, ctx.champion, "champion", notes)
    if challenger is not None and champion is not None:
        notes.append("challenger and champion curves come from each model's own held-out scores")
    metrics = list(ctx.objectives()) or list(
        dict.fromkeys(str(b["ranked_by"]) for b in boards if b.get("ranked_by"))
    )
    return {
        "threshold": THRESHOLD,
        "challenger": challenger,
        "champion": champion,
        "feature_importance": _importance(ctx, ctx.challenger),
        "candidate_metrics": _candidate_metrics(boards, metrics),
        "notes": notes,
    }
