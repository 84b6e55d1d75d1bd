"""scikit-learn flavor: a skops archive, loaded with only scikit-learn and numpy types trusted.

skops has no deterministic dump: ``skops.io.dump``/``dumps`` take only a compression and a
level, and every archive differs from the last save of the same model in three ways that
carry no model content: zip entry timestamps (the time of writing), the ``__id__`` of every
node in ``schema.json`` (CPython ``id()`` of the object) and the names of the ``.npy``
members (the same ids; ``bytes`` get random uuids). The content digest therefore hashes a
normalized schema: ids dropped, member names replaced by the sha256 of the member, set
items sorted, the skops version left out.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from signoff.errors import IntegrityError, SignoffError
from signoff.registry.flavors._folder import ModelMeta, Predict, Saved

__all__ = ["FILE", "NAME", "OPTIONS", "RUNS_CODE", "load", "save", "skops_content_digest"]

NAME = "sklearn"
FILE = "model.skops"
OPTIONS: frozenset[str] = frozenset()
RUNS_CODE = False

_SCHEMA = "schema.json"
_UNORDERED = frozenset({"SetNode"})  # their items come out in hash order, which varies


def save(
    model: object, folder: Path, example: np.ndarray[Any, Any], options: Mapping[str, object]
) -> Saved:
    """Write ``model.skops``; refuse a model that :func:`load` would refuse."""
    import skops.io as sio

    path = folder / FILE
    sio.dump(model, path)
    refused = _refused_types(sio.get_untrusted_types(file=path))
    if refused:
        path.unlink()
        raise SignoffError(
            f"the model holds types the sklearn flavor does not trust: {refused}; "
            'save it with flavor="python" and a code file instead'
        )
    output = "score" if hasattr(model, "predict_proba") else "value"
    return Saved(output=output, content_digest=skops_content_digest(path))


def load(folder: Path, meta: ModelMeta) -> Predict:
    """Load ``model.skops`` trusting only ``sklearn.*`` and ``numpy.*`` types."""
    import skops.io as sio

    path = folder / FILE
    untrusted = sio.get_untrusted_types(file=path)
    refused = _refused_types(untrusted)
    if refused:
        raise IntegrityError(f"model file holds types that are not trusted: {refused}")
    model: Any = sio.load(path, trusted=untrusted)
    if meta.output == "score":
        return lambda matrix: model.predict_proba(matrix)[:, -1]
    predict: Predict = model.predict
    return predict


def skops_content_digest(path: Path) -> str:
    """sha256 of a skops archive's normalized schema: equal for equal models, across saves."""
    with zipfile.ZipFile(path) as archive:
        members = set(archive.namelist())
        schema = json.loads(archive.read(_SCHEMA))
        if not isinstance(schema, dict):
            raise SignoffError(f"{path} is not a skops archive")
        schema.pop("_skops_version", None)
        normalized = _normalize(schema, archive, members)
    canonical = json.dumps(normalized, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _normalize(node: object, archive: zipfile.ZipFile, members: set[str]) -> object:
    if isinstance(node, list):
        return [_normalize(item, archive, members) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "__id__":
            continue  # CPython object ids: only say which nodes were the same object
        if key == "file" and isinstance(value, str) and value in members:
            out[key] = hashlib.sha256(archive.read(value)).hexdigest()
        else:
            out[key] = _normalize(value, archive, members)
    content = out.get("content")
    if node.get("__loader__") in _UNORDERED and isinstance(content, list):
        out["content"] = sorted(content, key=lambda item: json.dumps(item, sort_keys=True))
    return out


def _refused_types(untrusted: list[str]) -> list[str]:
    return sorted(t for t in set(untrusted) if not _is_trusted_type(t))


def _is_trusted_type(name: str) -> bool:
    # skops lists the types it does not trust by default; estimators from scikit-learn itself
    # and numpy's scalar types are what this flavor writes, anything else is refused.
    return name.startswith(("sklearn.", "numpy."))
