"""Shared code of the recsys example: files, features, the user split, metrics, model logging.

The four task scripts of the flow (``generate.py``, ``preprocess.py``, ``train_xgb.py``,
``train_forest.py``) import this module; it only needs numpy and signoff's task API at import
time (scikit-learn is imported where a metric needs it).
"""

from __future__ import annotations

import argparse
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

import signoff

N_CATEGORIES = 8
NDCG_K = 10
MODEL_NAME = "recsys"
#: A user with fewer past views than this is in the ``new_users`` slice, else ``regulars``.
NEW_USER_HISTORY = 15

#: The model's input columns, in this order, all float64.
FEATURE_NAMES: tuple[str, ...] = (
    "user_age",  # age bucket 0 (18-24) .. 5 (65+)
    "user_activity",  # 0..1, how active the user is
    "user_history_size",  # items the user viewed before this week
    "item_popularity",  # 0..1, normalised log view count
    "item_price_tier",  # 0 (cheap) .. 3 (premium)
    "item_freshness",  # 0 (old) .. 1 (new this week)
    "same_category",  # 1 when the item is in the user's declared favourite category
    "user_item_affinity",  # smoothed share of the user's history in the item's category
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Arrays = dict[str, npt.NDArray[Any]]

# A fixed timestamp for every zip entry so that an .npz is byte-identical for the same data.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# --- files -------------------------------------------------------------------------------


def save_npz(path: Path, arrays: Mapping[str, npt.ArrayLike]) -> Path:
    """Write arrays as an uncompressed ``.npz`` that is byte-identical for the same arrays.

    ``numpy.savez`` stamps each entry with the current time; this writer does not.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
    return path


def load_npz(path: Path, keys: tuple[str, ...], *, producer: str) -> Arrays:
    """Read the named arrays of an ``.npz``; exit with a one-line message if it is unusable."""
    if not path.is_file():
        raise SystemExit(f"error: input file {path} not found (it is written by {producer})")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise SystemExit(f"error: {path} lacks array(s) {', '.join(missing)}")
            return {k: data[k] for k in keys}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SystemExit(f"error: cannot read {path}: {exc}") from None


def write_json(path: Path, data: object) -> Path:
    """Write indented JSON with a final newline."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


# --- features ----------------------------------------------------------------------------


def build_features(interactions: Arrays, users: Arrays, items: Arrays) -> FloatArray:
    """One row of :data:`FEATURE_NAMES` per impression, from the raw tables."""
    u = interactions["user_id"]
    i = interactions["item_id"]
    history = users["history"].astype(np.float64)
    category = items["category"][i]
    size = history.sum(axis=1)
    affinity = (history[u, category] + 1.0) / (size[u] + N_CATEGORIES)
    columns = {
        "user_age": users["age_bucket"][u],
        "user_activity": users["activity"][u],
        "user_history_size": size[u],
        "item_popularity": items["popularity"][i],
        "item_price_tier": items["price_tier"][i],
        "item_freshness": items["freshness"][i],
        "same_category": category == users["preferred_category"][u],
        "user_item_affinity": affinity,
    }
    return np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in FEATURE_NAMES])


def holdout_users(user_ids: IntArray, fraction: float, seed: int) -> IntArray:
    """The sorted ids of the users held out for evaluation (a seeded ``fraction`` of them)."""
    unique = np.unique(user_ids)
    n_holdout = min(max(1, round(len(unique) * fraction)), max(1, len(unique) - 1))
    chosen = np.random.default_rng(seed).permutation(unique)[:n_holdout]
    return np.sort(chosen)


@dataclass(frozen=True, slots=True)
class Split:
    """One side of the train/holdout split written by ``preprocess.py``."""

    X: FloatArray
    y: IntArray
    user_id: IntArray
    feature_names: list[str]


def load_split(name: str) -> Split:
    """Read ``<name>.npz`` from the preprocess task's output."""
    path = signoff.input_dir("preprocess") / f"{name}.npz"
    keys = ("X", "y", "user_id", "feature_names")
    data = load_npz(path, keys, producer="the preprocess task (preprocess.py)")
    return Split(
        X=data["X"].astype(np.float64),
        y=data["y"].astype(np.int64),
        user_id=data["user_id"].astype(np.int64),
        feature_names=[str(n) for n in data["feature_names"]],
    )


# --- metrics -----------------------------------------------------------------------------


def _dcg_per_user(user_id: IntArray, gains: FloatArray, key: FloatArray, k: int) -> FloatArray:
    """DCG@k per user (in ascending user order) of rows ranked by descending ``key``.

    Ties keep row order (the feed order), so the result is deterministic.
    """
    order = np.lexsort((-key, user_id))
    sorted_users = user_id[order]
    first = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    group = np.cumsum(first) - 1
    rank = np.arange(order.size) - np.flatnonzero(first)[group]
    discount = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return np.bincount(group, weights=gains[order] * discount).astype(np.float64)


def ndcg_at_k(
    user_id: npt.ArrayLike, clicks: npt.ArrayLike, scores: npt.ArrayLike, k: int = NDCG_K
) -> float:
    """Mean over users of NDCG@k of their impressions ranked by score, gains = clicks.

    Users without a click are skipped (their NDCG is undefined); with no such user at all the
    result is 0.0.
    """
    users = np.asarray(user_id, dtype=np.int64)
    gains = np.asarray(clicks, dtype=np.float64)
    score = np.asarray(scores, dtype=np.float64)
    if not (users.shape == gains.shape == score.shape) or users.ndim != 1:
        raise ValueError("user_id, clicks and scores must be 1-D arrays of the same length")
    if users.size == 0:
        return 0.0
    dcg = _dcg_per_user(users, gains, score, k)
    ideal = _dcg_per_user(users, gains, gains, k)
    has_click = ideal > 0
    if not has_click.any():
        return 0.0
    return float(np.mean(dcg[has_click] / ideal[has_click]))


def roc_auc(clicks: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """ROC AUC of scores against clicks (scikit-learn's)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(clicks), np.asarray(scores)))


def user_slices(split: Split) -> dict[str, npt.NDArray[np.bool_]]:
    """Row masks of the user slices metrics are broken down by (by past activity)."""
    history = split.X[:, split.feature_names.index("user_history_size")]
    return {"new_users": history < NEW_USER_HISTORY, "regulars": history >= NEW_USER_HISTORY}


def slice_metrics(holdout: Split, scores: FloatArray) -> dict[str, float]:
    """``auc/<slice>`` and ``ndcg_at_10/<slice>`` for each user slice of the holdout.

    A slice's AUC is left out when it lacks clicks or non-clicks, its NDCG when no user in it
    clicked (both would be undefined).
    """
    out: dict[str, float] = {}
    for name, mask in user_slices(holdout).items():
        y = holdout.y[mask]
        if 0 < int(y.sum()) < y.size:
            out[f"auc/{name}"] = roc_auc(y, scores[mask])
        if y.any():
            ndcg = ndcg_at_k(holdout.user_id[mask], y, scores[mask], NDCG_K)
            out[f"ndcg_at_10/{name}"] = ndcg
    return out


# --- training ----------------------------------------------------------------------------


class Classifier(Protocol):
    """What the training scripts need from a fitted binary classifier."""

    def predict_proba(self, X: FloatArray) -> FloatArray: ...


def finish_training(
    model: Classifier,
    *,
    script: str,
    algorithm: str,
    hyperparams: Mapping[str, int | float | str],
    importances: npt.ArrayLike,
    train: Split,
    holdout: Split,
    fit_seconds: float,
) -> dict[str, float]:
    """Score the holdout and log what the review shows; write the side files; print a summary.

    Logs the overall and per-slice metrics, params, the ``algorithm`` tag and the model (with
    a sample of its training rows, for the review's drift check).
    """
    scores = np.asarray(model.predict_proba(holdout.X), dtype=np.float64)[:, 1]
    metrics = {
        "auc": roc_auc(holdout.y, scores),
        "ndcg_at_10": ndcg_at_k(holdout.user_id, holdout.y, scores, NDCG_K),
    }
    slices = slice_metrics(holdout, scores)

    signoff.log_tag("algorithm", algorithm)
    signoff.log_param("algorithm", algorithm)
    for key, value in hyperparams.items():
        signoff.log_param(key, value)
    signoff.log_param("features", ",".join(train.feature_names))
    for key, value in {**metrics, **slices}.items():
        signoff.log_metric(key, value)
    signoff.log_metric("train_rows", len(train.y))
    signoff.log_metric("holdout_rows", len(holdout.y))
    signoff.log_metric("fit_seconds", round(fit_seconds, 3))

    out = signoff.output_dir()
    weights = np.asarray(importances, dtype=np.float64)
    ranked = sorted(zip(train.feature_names, weights, strict=True), key=lambda p: -p[1])
    write_json(
        out / "feature_importance.json",
        {"algorithm": algorithm, "importance": {n: round(float(w), 6) for n, w in ranked}},
    )
    save_npz(
        out / "holdout_scores.npz",
        {"user_id": holdout.user_id, "y": holdout.y, "score": scores},
    )
    example = {name: train.X[:5, j] for j, name in enumerate(train.feature_names)}
    # A sample of the training rows goes beside the model: the review measures the drift
    # between what this model and the champion were trained on.
    training = {name: train.X[:, j] for j, name in enumerate(train.feature_names)}
    signoff.log_model(model, MODEL_NAME, input_example=example, training_data=training)

    shown = " ".join(f"{k}={v}" for k, v in hyperparams.items() if k != "seed")
    print(
        f"{script}: {algorithm} {shown} auc={metrics['auc']:.4f} "
        f"ndcg_at_10={metrics['ndcg_at_10']:.4f} "
        f"({len(train.y)} train rows, fit {fit_seconds:.2f}s)"
    )
    return metrics
