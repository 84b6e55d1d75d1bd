"""A loaded model: checks JSON rows against its signature, then predicts one value per row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from signoff.registry.flavors._folder import ModelMeta, Predict
from signoff.registry.flavors._signature import SignatureError, coerce_value

__all__ = ["LoadedModel"]


class LoadedModel:
    """A model ready to predict, with the signature its inputs are checked against.

    ``predict`` is the flavor's prediction function; it receives a checked float matrix and
    returns the positive-class score (output ``score``) or the predicted value per row.
    """

    def __init__(self, meta: ModelMeta, predict: Predict) -> None:
        self.meta = meta
        self._predict = predict

    @property
    def feature_names(self) -> list[str]:
        """The input column names, in signature order."""
        return [f.name for f in self.meta.signature]

    def rows_to_matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray[Any, Any]:
        """Check JSON rows against the signature and turn them into a float matrix."""
        names = self.feature_names
        expected = set(names)
        matrix = np.empty((len(rows), len(names)), dtype=np.float64)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise SignatureError(f"row {i}: expected an object of features")
            missing = [n for n in names if n not in row]
            extra = [k for k in row if k not in expected]
            if missing:
                raise SignatureError(f"row {i}: missing field(s) {', '.join(missing)}")
            if extra:
                raise SignatureError(f"row {i}: unknown field(s) {', '.join(map(str, extra))}")
            for j, feat in enumerate(self.meta.signature):
                matrix[i, j] = coerce_value(row[feat.name], feat, i)
        return matrix

    def predict(self, matrix: np.ndarray[Any, Any]) -> list[float]:
        """Predict for a checked matrix: the positive-class score or the predicted value."""
        out = self._predict(matrix)
        return [float(v) for v in np.asarray(out).ravel()]
