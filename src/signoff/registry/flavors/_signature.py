"""The input signature of a model: which named numeric columns it takes, checked per request."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from signoff.errors import SignoffError

__all__ = [
    "Feature",
    "SignatureError",
    "coerce_value",
    "example_matrix",
    "infer_signature",
]


class SignatureError(SignoffError, ValueError):
    """Input rows do not match the model's signature."""


@dataclass(frozen=True, slots=True)
class Feature:
    """One input column of a model: its name and kind (``float``, ``int`` or ``bool``)."""

    name: str
    dtype: str


def infer_signature(example: object) -> tuple[Feature, ...]:
    """Infer the input signature from an example: a dict of columns, rows, or a 2-D array."""
    if isinstance(example, Mapping):
        return tuple(Feature(str(k), _dtype_of(np.asarray(v))) for k, v in example.items())
    if isinstance(example, Sequence) and example and isinstance(example[0], Mapping):
        first = example[0]
        return tuple(
            Feature(str(k), _dtype_of(np.asarray([row[k] for row in example]))) for k in first
        )
    arr = np.asarray(example)
    if arr.ndim != 2:
        raise SignoffError("input_example must be columns, rows or a 2-D array")
    return tuple(Feature(f"f{i}", _dtype_of(arr[:, i])) for i in range(arr.shape[1]))


def example_matrix(example: object, signature: Sequence[Feature]) -> np.ndarray[Any, Any]:
    """Turn an input example (as accepted by :func:`infer_signature`) into a float matrix."""
    try:
        if isinstance(example, Mapping):
            columns = [np.asarray(example[f.name], dtype=np.float64).ravel() for f in signature]
            return np.column_stack(columns) if columns else np.empty((0, 0))
        if isinstance(example, Sequence) and example and isinstance(example[0], Mapping):
            return np.asarray(
                [[float(row[f.name]) for f in signature] for row in example], dtype=np.float64
            )
        return np.asarray(example, dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise SignoffError(f"input_example is not a table of numbers: {exc}") from None


def coerce_value(value: object, feat: Feature, row: int) -> float:
    """Check one JSON value against its feature and return it as a float."""
    if feat.dtype == "bool":
        if not isinstance(value, bool):
            raise SignatureError(f"row {row}: field {feat.name} must be a boolean")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignatureError(f"row {row}: field {feat.name} must be a number")
    if feat.dtype == "int" and isinstance(value, float) and not value.is_integer():
        raise SignatureError(f"row {row}: field {feat.name} must be an integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise SignatureError(f"row {row}: field {feat.name} must be finite")
    return float(value)


def _dtype_of(values: np.ndarray[Any, Any]) -> str:
    if values.dtype.kind == "b":
        return "bool"
    if values.dtype.kind in "iu":
        return "int"
    if values.dtype.kind == "f":
        return "float"
    raise SignoffError(f"unsupported feature type {values.dtype}: features must be numeric")
