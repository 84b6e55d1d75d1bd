"""Python flavor: the model is a code file plus artifact files, never a pickled object.

``save`` copies the code file as ``model.py`` and each artifact into ``artifacts/``;
``model.py`` must define ``load(folder: Path)`` returning an object whose
``predict(matrix)`` gives one value per row. Loading runs that code, so
:func:`signoff.registry.flavors.load_model` does it only for a folder whose digest it has
just checked against the expected (approved) one: the digest is what makes running this
code acceptable. No bytecode is read from or written into the folder, so what runs is the
digested ``model.py`` and the folder stays byte-identical.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import shutil
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import numpy as np

from signoff.errors import SignoffError
from signoff.registry.flavors._folder import ModelMeta, Predict, Saved, files_digest

__all__ = ["ARTIFACTS_DIR", "FILE", "NAME", "OPTIONS", "RUNS_CODE", "load", "save"]

NAME = "python"
FILE = "model.py"
ARTIFACTS_DIR = "artifacts"
OPTIONS: frozenset[str] = frozenset({"code", "artifacts", "output"})
RUNS_CODE = True

_ARTIFACT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_OUTPUTS = ("value", "score")


def save(
    model: object, folder: Path, example: np.ndarray[Any, Any], options: Mapping[str, object]
) -> Saved:
    """Copy the code file and artifacts into ``folder``.

    Options: ``code`` (path of the ``.py`` file, required), ``artifacts`` (``{key: path}``;
    a file goes to ``artifacts/<key><suffix>``, a folder to ``artifacts/<key>/``) and
    ``output`` (``"value"``, the default, or ``"score"``). When ``model`` has a ``predict``
    method, the saved code is loaded once and must reproduce its predictions on the example.
    """
    code = _code_file(options.get("code"))
    artifacts = _artifact_files(options.get("artifacts"))
    output = options.get("output", "value")
    if output not in _OUTPUTS:
        raise SignoffError(f"output must be one of {', '.join(_OUTPUTS)}, not {output!r}")
    shutil.copyfile(code, folder / FILE)
    written = [folder / FILE]
    for key, source in artifacts.items():
        if source.is_dir():
            target = folder / ARTIFACTS_DIR / key
            shutil.copytree(source, target, dirs_exist_ok=True)
            written += [p for p in target.rglob("*") if p.is_file()]
        else:
            target = folder / ARTIFACTS_DIR / f"{key}{source.suffix}"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target)
            written.append(target)
    if callable(getattr(model, "predict", None)):
        _check_reproduces(model, folder, example)
    return Saved(output=str(output), content_digest=files_digest(folder, written))


def load(folder: Path, meta: ModelMeta) -> Predict:
    """Import ``model.py`` under a unique module name and call its ``load(folder)``.

    Call only for a folder whose digest was checked: this runs the folder's code.
    """
    module = _import_code(folder / FILE)
    entry = getattr(module, "load", None)
    if not callable(entry):
        raise SignoffError(f"{FILE} must define load(folder) returning an object with predict")
    try:
        obj = entry(folder)
    except Exception as exc:
        raise SignoffError(f"{FILE}: load(folder) failed: {type(exc).__name__}: {exc}") from exc
    predict = getattr(obj, "predict", None)
    if not callable(predict):
        raise SignoffError(f"{FILE}: load(folder) returned an object without predict()")

    def run(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return _one_per_row(predict(matrix), len(matrix))

    return run


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the source file itself: no ``__pycache__`` is read or written."""

    def get_code(self, fullname: str) -> CodeType:
        source = self.get_data(self.path)
        return compile(source, self.path, "exec", dont_inherit=True)


def _import_code(path: Path) -> ModuleType:
    name = f"signoff_model_{uuid.uuid4().hex}"
    loader = _SourceOnlyLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise SignoffError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look the module up while it runs
    try:
        loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SignoffError(f"{FILE} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def _one_per_row(out: object, rows: int) -> np.ndarray[Any, Any]:
    values = np.asarray(out, dtype=np.float64)
    if values.size != rows or (values.ndim > 0 and values.shape[0] != rows):
        raise SignoffError(
            f"predict() returned shape {list(values.shape)} for {rows} row(s): "
            "expected one value per row"
        )
    return values.reshape(rows)


def _check_reproduces(model: object, folder: Path, example: np.ndarray[Any, Any]) -> None:
    expected = _one_per_row(model.predict(example), len(example))  # type: ignore[attr-defined]
    actual = load(folder, ModelMeta(NAME, (), "value"))(example)
    if not np.allclose(actual, expected, rtol=1e-6, atol=1e-9, equal_nan=True):
        raise SignoffError(
            f"the saved {FILE} and artifacts do not reproduce the model's predictions on the "
            "input example"
        )


def _code_file(value: object) -> Path:
    if not isinstance(value, str | Path):
        raise SignoffError('the python flavor needs code=Path("model_code.py")')
    path = Path(value)
    if path.suffix != ".py" or not path.is_file():
        raise SignoffError(f"code must be an existing .py file, not {path}")
    return path


def _artifact_files(value: object) -> dict[str, Path]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SignoffError("artifacts must be a mapping of names to paths")
    out: dict[str, Path] = {}
    for key, path in value.items():
        if not isinstance(key, str) or not _ARTIFACT_KEY.match(key) or ".." in key:
            raise SignoffError(f"artifact name {key!r} must be letters, digits, '_', '-', '.'")
        if not isinstance(path, str | Path) or not Path(path).exists():
            raise SignoffError(f"artifact {key}: {path!r} is not an existing file or folder")
        out[key] = Path(path)
    return out
