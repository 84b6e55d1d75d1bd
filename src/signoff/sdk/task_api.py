"""The task-side API: how a task's own code talks to signoff, under any executor.

Calls append JSON lines to a records file that the executor hands back to the engine when the
task ends; nothing here opens a database or a network connection, so it works the same in a
subprocess, on a cluster node, or outside signoff (records then go to ``./signoff-records``).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import Any

from signoff.tracking.context import current_task

__all__ = [
    "input_dir",
    "log_metric",
    "log_model",
    "log_param",
    "log_tag",
    "output_dir",
    "param",
    "params",
]

ENV_RUN_ID = "SIGNOFF_RUN_ID"
ENV_TASK = "SIGNOFF_TASK"
ENV_PARAMS = "SIGNOFF_PARAMS"
ENV_OUTPUT_DIR = "SIGNOFF_OUTPUT_DIR"
ENV_INPUTS_DIR = "SIGNOFF_INPUTS_DIR"
ENV_RECORDS_FILE = "SIGNOFF_RECORDS_FILE"


def params() -> dict[str, Any]:
    """Every parameter of this task run (grid values included)."""
    ctx = current_task()
    if ctx is not None:
        return dict(ctx.params)
    raw = os.environ.get(ENV_PARAMS)
    return dict(json.loads(raw)) if raw else {}


def param(key: str, default: Any = None) -> Any:
    """One parameter of this task run, or ``default`` when it is not set."""
    return params().get(key, default)


def output_dir() -> Path:
    """The folder whose files become this task run's artifacts (created)."""
    ctx = current_task()
    path = ctx.output_dir if ctx else Path(os.environ.get(ENV_OUTPUT_DIR, "output"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def input_dir(upstream: str) -> Path:
    """Where the outputs of the upstream task ``upstream`` are."""
    ctx = current_task()
    if ctx is not None and upstream in ctx.inputs:
        return ctx.inputs[upstream]
    base = ctx.inputs_dir if ctx else Path(os.environ.get(ENV_INPUTS_DIR, "inputs"))
    return base / upstream


def _append(record: dict[str, Any]) -> None:
    record["time"] = time.time()
    ctx = current_task()
    path = ctx.records_file if ctx else Path(os.environ.get(ENV_RECORDS_FILE, "signoff-records"))
    line = json.dumps(record, default=str) + "\n"
    try:
        f = path.open("a", encoding="utf-8")
    except FileNotFoundError:  # an in-process task's folder is made when first needed
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("a", encoding="utf-8")
    with f:
        f.write(line)


def log_param(key: str, value: Any) -> None:
    """Record a parameter the task chose (besides the ones signoff passed in)."""
    _append({"kind": "param", "key": key, "value": value})


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record a metric value; repeated calls with steps make a time series."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"metric {key} must be a finite number, got {value!r}")
    _append({"kind": "metric", "key": key, "value": number, "step": step})


def log_tag(key: str, value: str) -> None:
    """Record a free-form tag."""
    _append({"kind": "tag", "key": key, "value": str(value)})


def log_model(
    model: object,
    name: str,
    *,
    input_example: object,
    flavor: str | None = None,
    training_data: object | None = None,
    **flavor_options: object,
) -> Path:
    """Save a fitted model in its flavor's format and register it as a model version.

    ``input_example`` (columns, rows or a 2-D array) fixes the input signature that serving
    checks requests against. ``training_data`` (same shape as the example; optional) keeps a
    sample of up to 5,000 rows beside the model, so the review can measure drift between the
    data a challenger and the champion were trained on, and monitoring can compare live inputs
    with it. Flavor options (e.g. ``code=`` and ``artifacts=`` for the ``python`` flavor) are
    passed to the flavor. Returns the model folder inside the output folder.
    """
    from signoff.registry.flavors import save_model

    folder = output_dir() / "models" / name
    meta = save_model(model, folder, input_example=input_example, flavor=flavor, **flavor_options)
    if training_data is not None:
        _save_training_sample(folder, training_data, [f.name for f in meta.signature])
    _append(
        {
            "kind": "model",
            "name": name,
            "path": folder.relative_to(output_dir()).as_posix(),
            "flavor": meta.flavor,
        }
    )
    return folder


TRAINING_SAMPLE = "training_sample.npz"
_SAMPLE_ROWS = 5000


def _save_training_sample(folder: Path, data: object, names: list[str]) -> None:
    """A seeded sample of the training rows, as a float matrix with the signature's names."""
    import numpy as np

    if isinstance(data, dict):
        matrix = np.column_stack([np.asarray(data[n], dtype=np.float64) for n in names])
    else:
        matrix = np.asarray(data, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(
            f"training_data must have the {len(names)} features of the input example "
            f"({', '.join(names)})"
        )
    if matrix.shape[0] > _SAMPLE_ROWS:
        rows = np.random.default_rng(0).choice(matrix.shape[0], _SAMPLE_ROWS, replace=False)
        matrix = matrix[np.sort(rows)]
    # Written like numpy's savez but with fixed timestamps: equal data, equal bytes.
    arrays = {"X": matrix, "feature_names": np.asarray(names)}
    with zipfile.ZipFile(folder / TRAINING_SAMPLE, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
