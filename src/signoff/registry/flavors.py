"""How a model is written to and read from a folder, per flavor, without unpickling.

A model folder holds the flavor's own files plus ``signoff-model.json`` (flavor, signature,
file list). Its digest is the sha256 over every file's relative path and content, so a model
is identified by what is on disk, and :func:`load_model` refuses a folder whose digest is not
the expected one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signoff.errors import IntegrityError, SignoffError

__all__ = [
    "META_FILE",
    "Feature",
    "LoadedModel",
    "ModelMeta",
    "SignatureError",
    "detect_flavor",
    "folder_digest",
    "load_model",
    "save_model",
]

META_FILE = "signoff-model.json"
_SKLEARN_FILE = "model.skops"
_XGBOOST_FILE = "model.ubj"


class SignatureError(SignoffError, ValueError):
    """Input rows do not match the model's signature."""


@dataclass(frozen=True, slots=True)
class Feature:
    """One input column of a model: its name and kind (``float``, ``int`` or ``bool``)."""

    name: str
    dtype: str


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """What ``signoff-model.json`` says about a model folder."""

    flavor: str
    signature: tuple[Feature, ...]
    output: str  # "score" (probability of the positive class) or "value"

    def to_json(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor,
            "signature": [{"name": f.name, "dtype": f.dtype} for f in self.signature],
            "output": self.output,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> ModelMeta:
        return ModelMeta(
            flavor=str(data["flavor"]),
            signature=tuple(Feature(str(f["name"]), str(f["dtype"])) for f in data["signature"]),
            output=str(data.get("output", "value")),
        )


def detect_flavor(model: object) -> str:
    """Name the flavor of a fitted model object from its class's module."""
    module = type(model).__module__
    if module.startswith("xgboost"):
        return "xgboost"
    if module.startswith("sklearn"):
        return "sklearn"
    raise SignoffError(
        f"cannot save a model of type {type(model).__qualname__}: supported flavors are "
        "scikit-learn and XGBoost"
    )


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


def _dtype_of(values: np.ndarray[Any, Any]) -> str:
    if values.dtype.kind == "b":
        return "bool"
    if values.dtype.kind in "iu":
        return "int"
    if values.dtype.kind == "f":
        return "float"
    raise SignoffError(f"unsupported feature type {values.dtype}: features must be numeric")


def save_model(
    model: object,
    folder: Path,
    *,
    input_example: object,
    flavor: str | None = None,
) -> ModelMeta:
    """Write a fitted model and its metadata into ``folder`` (created) in its flavor's format."""
    flavor = flavor or detect_flavor(model)
    folder.mkdir(parents=True, exist_ok=True)
    signature = infer_signature(input_example)
    has_proba = hasattr(model, "predict_proba")
    if flavor == "sklearn":
        import skops.io as sio

        sio.dump(model, folder / _SKLEARN_FILE)
    elif flavor == "xgboost":
        booster: Any = model.get_booster() if hasattr(model, "get_booster") else model
        booster.save_model(str(folder / _XGBOOST_FILE))
    else:
        raise SignoffError(f"unknown model flavor {flavor!r}")
    meta = ModelMeta(flavor=flavor, signature=signature, output="score" if has_proba else "value")
    (folder / META_FILE).write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True))
    return meta


def folder_digest(folder: Path) -> str:
    """sha256 over every file of a folder (sorted relative paths and contents)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def read_meta(folder: Path) -> ModelMeta:
    """Read a model folder's metadata; a folder without it is not a model."""
    path = folder / META_FILE
    if not path.is_file():
        raise SignoffError(f"{folder} is not a model folder (no {META_FILE})")
    return ModelMeta.from_json(json.loads(path.read_text()))


class LoadedModel:
    """A model ready to predict, with the signature its inputs are checked against."""

    def __init__(self, meta: ModelMeta, predictor: Any) -> None:
        self.meta = meta
        self._predictor = predictor

    @property
    def feature_names(self) -> list[str]:
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
                matrix[i, j] = _coerce(row[feat.name], feat, i)
        return matrix

    def predict(self, matrix: np.ndarray[Any, Any]) -> list[float]:
        """Predict for a checked matrix: the positive-class score or the predicted value."""
        if self.meta.flavor == "xgboost":
            import xgboost

            dm = xgboost.DMatrix(matrix, feature_names=self.feature_names)
            out = self._predictor.predict(dm)
        elif self.meta.output == "score":
            out = self._predictor.predict_proba(matrix)[:, -1]
        else:
            out = self._predictor.predict(matrix)
        return [float(v) for v in np.asarray(out).ravel()]


def _coerce(value: object, feat: Feature, row: int) -> float:
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


def load_model(folder: Path, *, expected_digest: str | None) -> LoadedModel:
    """Load a model folder after checking its digest; scikit-learn only with trusted types."""
    if expected_digest is not None:
        actual = folder_digest(folder)
        if actual != expected_digest:
            raise IntegrityError(
                f"model at {folder} has digest {actual[:12]}…, expected {expected_digest[:12]}…"
            )
    meta = read_meta(folder)
    if meta.flavor == "sklearn":
        import skops.io as sio

        path = folder / _SKLEARN_FILE
        untrusted = sio.get_untrusted_types(file=path)
        allowed = [t for t in untrusted if _is_trusted_type(t)]
        refused = sorted(set(untrusted) - set(allowed))
        if refused:
            raise IntegrityError(f"model file holds types that are not trusted: {refused}")
        return LoadedModel(meta, sio.load(path, trusted=allowed))
    if meta.flavor == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(folder / _XGBOOST_FILE))
        return LoadedModel(meta, booster)
    raise SignoffError(f"unknown model flavor {meta.flavor!r}")


def _is_trusted_type(name: str) -> bool:
    # skops lists the types it does not trust by default; estimators from scikit-learn itself
    # and numpy's scalar types are what our flavor writes, anything else is refused.
    return name.startswith(("sklearn.", "numpy."))
