"""The model folder: its metadata file, its digests, and what every flavor module provides."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from signoff.errors import SignoffError
from signoff.registry.flavors._signature import Feature

__all__ = [
    "META_FILE",
    "FlavorModule",
    "ModelMeta",
    "Predict",
    "Saved",
    "file_sha256",
    "files_digest",
    "folder_digest",
    "read_meta",
    "write_meta",
]

META_FILE = "signoff-model.json"

Predict = Callable[[np.ndarray[Any, Any]], Any]
"""A loaded model's prediction function: a float matrix in, one value per row out."""


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """What ``signoff-model.json`` says about a model folder.

    ``content_digest`` identifies the model itself (its learned state), unlike the folder
    digest, which identifies the bytes on disk: two saves of the same model may differ in
    bytes (skops archives) but have the same content digest. Folders written before it
    existed have none.
    """

    flavor: str
    signature: tuple[Feature, ...]
    output: str  # "score" (probability of the positive class) or "value"
    content_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``signoff-model.json``."""
        data: dict[str, Any] = {
            "flavor": self.flavor,
            "signature": [{"name": f.name, "dtype": f.dtype} for f in self.signature],
            "output": self.output,
        }
        if self.content_digest is not None:
            data["content_digest"] = self.content_digest
        return data

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> ModelMeta:
        """Read the JSON object of ``signoff-model.json``."""
        content = data.get("content_digest")
        return ModelMeta(
            flavor=str(data["flavor"]),
            signature=tuple(Feature(str(f["name"]), str(f["dtype"])) for f in data["signature"]),
            output=str(data.get("output", "value")),
            content_digest=None if content is None else str(content),
        )


@dataclass(frozen=True, slots=True)
class Saved:
    """What a flavor reports after writing its files: the output kind and the content digest."""

    output: str
    content_digest: str


class FlavorModule(Protocol):
    """What each flavor module (``_sklearn``, ``_xgboost``, ``_onnx``, ``_python``) provides."""

    @property
    def NAME(self) -> str: ...
    @property
    def OPTIONS(self) -> frozenset[str]: ...
    @property
    def RUNS_CODE(self) -> bool: ...

    def save(
        self,
        model: object,
        folder: Path,
        example: np.ndarray[Any, Any],
        options: Mapping[str, object],
    ) -> Saved: ...

    def load(self, folder: Path, meta: ModelMeta) -> Predict: ...


def file_sha256(path: Path) -> str:
    """sha256 of one file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(folder: Path, paths: Iterable[Path]) -> str:
    """sha256 over the given files of a folder (sorted relative paths and contents)."""
    h = hashlib.sha256()
    for path in sorted(paths):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def folder_digest(folder: Path) -> str:
    """sha256 over every file of a folder (sorted relative paths and contents)."""
    return files_digest(folder, (p for p in folder.rglob("*") if p.is_file()))


def write_meta(folder: Path, meta: ModelMeta) -> None:
    """Write ``signoff-model.json`` into a model folder."""
    (folder / META_FILE).write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True))


def read_meta(folder: Path) -> ModelMeta:
    """Read a model folder's metadata; a folder without it is not a model."""
    path = folder / META_FILE
    if not path.is_file():
        raise SignoffError(f"{folder} is not a model folder (no {META_FILE})")
    try:
        return ModelMeta.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise SignoffError(f"{path} is not valid model metadata: {exc}") from None
