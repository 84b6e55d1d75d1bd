"""ROC and precision-recall curves and confusion counts of binary scores (numpy only).

Used by the review report's figures. Curves are downsampled to ``MAX_POINTS`` evenly spaced
points (first and last kept) and rounded to 4 decimals, so the same scores give the same
report bytes; the areas are computed on the full curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_POINTS", "confusion_counts", "downsample", "pr_curve", "roc_curve"]

MAX_POINTS = 200

Point = tuple[float, float]


def _ranked(y: npt.ArrayLike, score: npt.ArrayLike) -> tuple[np.ndarray[Any, Any], ...]:
    """Cumulative true and false positives at each distinct threshold, high scores first."""
    labels = np.asarray(y, dtype=np.float64).ravel() > 0.5
    scores = np.asarray(score, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError("y and score must have the same length")
    order = np.argsort(-scores, kind="mergesort")
    labels, scores = labels[order], scores[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # end of each tie group
    tp = np.cumsum(labels)[last].astype(np.float64)
    fp = (last + 1 - tp).astype(np.float64)
    return tp, fp


def downsample(points: Sequence[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most ``limit`` points, evenly spaced along the sequence, first and last kept."""
    if len(points) <= limit:
        return list(points)
    picks = np.unique(np.round(np.linspace(0, len(points) - 1, limit)).astype(int))
    return [points[int(i)] for i in picks]


def _rounded(points: Sequence[Point]) -> list[list[float]]:
    return [[round(x, 4), round(y, 4)] for x, y in points]


def roc_curve(y: npt.ArrayLike, score: npt.ArrayLike) -> dict[str, Any] | None:
    """ROC points ``[fpr, tpr]`` (downsampled) and the area under the full curve.

    ``None`` when the labels are all of one class (the curve is undefined).
    """
    tp, fp = _ranked(y, score)
    positives, negatives = (tp[-1], fp[-1]) if tp.size else (0.0, 0.0)
    if positives == 0 or negatives == 0:
        return None
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    points = list(zip(fpr.tolist(), tpr.tolist(), strict=True))
    return {"auc": round(area, 6), "points": _rounded(downsample(points))}


def pr_curve(y: npt.ArrayLike, score: npt.ArrayLike) -> dict[str, Any] | None:
    """Precision-recall points ``[recall, precision]`` (downsampled) and average precision.

    ``None`` when there is no positive label.
    """
    tp, fp = _ranked(y, score)
    positives = tp[-1] if tp.size else 0.0
    if positives == 0:
        return None
    recall = np.r_[0.0, tp / positives]
    precision = np.r_[1.0, tp / (tp + fp)]
    average = float(np.sum(np.diff(recall) * precision[1:]))
    points = list(zip(recall.tolist(), precision.tolist(), strict=True))
    return {"average_precision": round(average, 6), "points": _rounded(downsample(points))}


def confusion_counts(
    y: npt.ArrayLike, score: npt.ArrayLike, threshold: float = 0.5
) -> dict[str, Any]:
    """True/false positives/negatives when a score at or above ``threshold`` means positive."""
    labels = np.asarray(y, dtype=np.float64).ravel() > 0.5
    predicted = np.asarray(score, dtype=np.float64).ravel() >= threshold
    return {
        "threshold": threshold,
        "tp": int(np.sum(labels & predicted)),
        "fp": int(np.sum(~labels & predicted)),
        "fn": int(np.sum(labels & ~predicted)),
        "tn": int(np.sum(~labels & ~predicted)),
    }
