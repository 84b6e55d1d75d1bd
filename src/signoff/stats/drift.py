"""Data drift between the rows a challenger and the champion were trained on: PSI and KS.

Both statistics compare one feature's values in two samples. The champion's sample is the
reference: PSI uses 10 bins cut at the reference's deciles (empty bins count as a tiny share
``EPSILON`` so the logarithm stays finite); KS is the largest distance between the two
empirical distribution functions. PSI levels: below 0.1 none, 0.1 to 0.2 moderate, above
0.2 significant; a significant feature raises the report's drift flag.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BINS",
    "EPSILON",
    "MODERATE",
    "SIGNIFICANT",
    "TRAINING_SAMPLE",
    "TrainingSample",
    "compare_samples",
    "drift_level",
    "ks_statistic",
    "load_training_sample",
    "psi",
]

#: The file ``signoff.log_model(..., training_data=...)`` writes in the model folder.
TRAINING_SAMPLE = "training_sample.npz"
BINS = 10
EPSILON = 1e-4
MODERATE = 0.1
SIGNIFICANT = 0.2

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrainingSample:
    """A model's training-data sample: a float matrix and its column names."""

    X: FloatArray
    feature_names: tuple[str, ...]

    def column(self, name: str) -> FloatArray:
        """One feature's values, without NaNs."""
        values = self.X[:, self.feature_names.index(name)]
        return values[~np.isnan(values)]


def load_training_sample(model_folder: Path) -> TrainingSample | None:
    """The sample beside a model (``None`` when there is none or it cannot be read)."""
    path = model_folder / TRAINING_SAMPLE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            matrix = np.asarray(data["X"], dtype=np.float64)
            names = tuple(str(n) for n in data["feature_names"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        return None
    return TrainingSample(matrix, names)


def _as_floats(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[~np.isnan(array)]


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, bins: int = BINS) -> float:
    """Population stability index of ``current`` against ``reference``.

    Bins are cut at the reference's quantiles (``bins`` of them; repeated cut points of a
    discrete feature merge); a bin empty on either side counts as a share of ``EPSILON``.
    """
    ref, cur = _as_floats(reference), _as_floats(current)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("both samples need at least one value")
    cuts = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(cuts, ref, side="right"), minlength=cuts.size + 1)
    actual = np.bincount(np.searchsorted(cuts, cur, side="right"), minlength=cuts.size + 1)
    e = np.maximum(expected / ref.size, EPSILON)
    a = np.maximum(actual / cur.size, EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    ref, cur = np.sort(_as_floats(reference)), np.sort(_as_floats(current))
    if ref.size == 0 or cur.size == 0:
        raise ValueError("both samples need at least one value")
    points = np.concatenate([ref, cur])
    f_ref = np.searchsorted(ref, points, side="right") / ref.size
    f_cur = np.searchsorted(cur, points, side="right") / cur.size
    return float(np.max(np.abs(f_ref - f_cur)))


def drift_level(value: float) -> str:
    """``none`` (< 0.1), ``moderate`` (0.1 to 0.2) or ``significant`` (> 0.2) for a PSI."""
    if value > SIGNIFICANT:
        return "significant"
    if value >= MODERATE:
        return "moderate"
    return "none"


def compare_samples(champion: TrainingSample, challenger: TrainingSample) -> dict[str, Any]:
    """PSI and KS per feature of the challenger's sample against the champion's.

    Returns ``{"flag", "features", "rows", "only_in_challenger", "only_in_champion"}``;
    features are in the challenger's column order, values rounded to 6 digits.
    """
    features: list[dict[str, Any]] = []
    for name in challenger.feature_names:
        if name not in champion.feature_names:
            continue
        ref, cur = champion.column(name), challenger.column(name)
        if ref.size == 0 or cur.size == 0:
            continue
        value = psi(ref, cur)
        features.append(
            {
                "name": name,
                "psi": round(value, 6),
                "ks": round(ks_statistic(ref, cur), 6),
                "level": drift_level(value),
                "champion_mean": round(float(ref.mean()), 6),
                "challenger_mean": round(float(cur.mean()), 6),
            }
        )
    return {
        "flag": any(f["level"] == "significant" for f in features),
        "features": features,
        "rows": {"champion": int(champion.X.shape[0]), "challenger": int(challenger.X.shape[0])},
        "only_in_challenger": [
            n for n in challenger.feature_names if n not in champion.feature_names
        ],
        "only_in_champion": [
            n for n in champion.feature_names if n not in challenger.feature_names
        ],
    }
