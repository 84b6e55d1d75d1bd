"""XGBoost flavor: the booster in XGBoost's own UBJSON format (``model.ubj``), nothing pickled.

XGBoost writes the same bytes for the same booster, so the content digest is the file's
sha256.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from signoff.errors import SignoffError
from signoff.registry.flavors._folder import ModelMeta, Predict, Saved, file_sha256

__all__ = ["FILE", "NAME", "OPTIONS", "RUNS_CODE", "load", "save"]

NAME = "xgboost"
FILE = "model.ubj"
OPTIONS: frozenset[str] = frozenset()
RUNS_CODE = False

_SCORE_OBJECTIVES = frozenset({"binary:logistic"})


def save(
    model: object, folder: Path, example: np.ndarray[Any, Any], options: Mapping[str, object]
) -> Saved:
    """Write the booster of an XGBoost scikit-learn model (or a raw ``Booster``)."""
    import xgboost

    booster: Any = model.get_booster() if hasattr(model, "get_booster") else model
    if not isinstance(booster, xgboost.Booster):
        raise SignoffError(
            f"the xgboost flavor needs an XGBoost model, got {type(model).__qualname__}"
        )
    path = folder / FILE
    booster.save_model(str(path))
    if hasattr(model, "get_booster"):
        output = "score" if hasattr(model, "predict_proba") else "value"
    else:
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
        output = "score" if objective in _SCORE_OBJECTIVES else "value"
    return Saved(output=output, content_digest=file_sha256(path))


def load(folder: Path, meta: ModelMeta) -> Predict:
    """Load ``model.ubj`` into a ``Booster``; rows are passed with the signature's names."""
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(folder / FILE))
    names = [f.name for f in meta.signature]

    def predict(matrix: np.ndarray[Any, Any]) -> Any:
        return booster.predict(xgboost.DMatrix(matrix, feature_names=names))

    return predict
