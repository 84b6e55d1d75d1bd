"""Quality metrics of logged predictions against feedback labels (pure numpy).

Outputs are what the endpoint answered: a score or probability for a binary classifier
(``accuracy`` thresholds it at 0.5, ``auc`` ranks it), a class label (``accuracy`` compares
it with the label), a number (``rmse``), or a relevance score (``ndcg``, grouped by one input
feature when given). A metric that cannot be computed from the events (AUC with one class)
is ``None``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

__all__ = ["accuracy", "auc", "ndcg", "quality_metric", "rmse"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return float(value)
    return None


def _binary(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number in (0.0, 1.0) else None


def accuracy(outputs: Sequence[Any], labels: Sequence[Any]) -> float | None:
    """Share of correct predictions: scores against 0/1 labels at 0.5, else equality."""
    if not outputs:
        return None
    hits = 0
    for out, label in zip(outputs, labels, strict=True):
        score, truth = _number(out), _binary(label)
        if isinstance(out, list) and out:  # class probabilities: the most likely class
            hits += int(int(np.argmax(out)) == _number(label))
        elif score is not None and truth is not None and not isinstance(out, bool):
            hits += int((score >= 0.5) == bool(truth))
        else:
            hits += int(out == label)
    return hits / len(outputs)


def auc(scores: Sequence[Any], labels: Sequence[Any]) -> float | None:
    """Area under the ROC curve of scores against 0/1 labels (ties count half)."""
    pairs = [(_number(s), _binary(y)) for s, y in zip(scores, labels, strict=True)]
    kept = [(s, y) for s, y in pairs if s is not None and y is not None]
    if not kept:
        return None
    s = np.array([p[0] for p in kept], dtype=np.float64)
    y = np.array([p[1] for p in kept], dtype=np.int64)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_scores = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def rmse(outputs: Sequence[Any], labels: Sequence[Any]) -> float | None:
    """Root mean squared error of numeric outputs against numeric labels."""
    pairs = [(_number(o), _number(y)) for o, y in zip(outputs, labels, strict=True)]
    kept = [(o, y) for o, y in pairs if o is not None and y is not None]
    if not kept:
        return None
    diff = np.array([o - y for o, y in kept], dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def ndcg(
    scores: Sequence[Any],
    relevance: Sequence[Any],
    groups: Sequence[Hashable] | None = None,
    k: int | None = None,
) -> float | None:
    """Mean NDCG over rankings (one per group, or one over everything), cut at ``k``.

    Gains are the relevance labels themselves (scikit-learn's ``ndcg_score``); a ranking
    with no relevant item is left out.
    """
    by_group: dict[Hashable, list[tuple[float, float]]] = {}
    keys = groups if groups is not None else [None] * len(scores)
    for score, rel, key in zip(scores, relevance, keys, strict=True):
        s, r = _number(score), _number(rel)
        if s is not None and r is not None:
            by_group.setdefault(key, []).append((s, r))
    values = []
    for rows in by_group.values():
        gains = np.array([r for _, r in sorted(rows, key=lambda x: -x[0])], dtype=np.float64)
        ideal = np.sort(gains)[::-1]
        cut = len(gains) if k is None else min(k, len(gains))
        discounts = 1.0 / np.log2(np.arange(2, cut + 2))
        best = float(np.sum(ideal[:cut] * discounts))
        if best > 0:
            values.append(float(np.sum(gains[:cut] * discounts)) / best)
    return float(np.mean(values)) if values else None


def quality_metric(
    metric: str,
    outputs: Sequence[Any],
    labels: Sequence[Any],
    *,
    groups: Sequence[Hashable] | None = None,
    k: int | None = None,
) -> float | None:
    """One of ``accuracy``, ``auc``, ``rmse``, ``ndcg`` by name."""
    if metric == "accuracy":
        return accuracy(outputs, labels)
    if metric == "auc":
        return auc(outputs, labels)
    if metric == "rmse":
        return rmse(outputs, labels)
    if metric == "ndcg":
        return ndcg(outputs, labels, groups, k)
    raise ValueError(f"unknown quality metric {metric!r}")
