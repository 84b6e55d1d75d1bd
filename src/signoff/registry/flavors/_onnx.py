"""ONNX flavor: ``model.onnx`` run by onnxruntime on the CPU; a graph is data, not code.

The graph must take one float tensor of shape ``[N, F]``. Its first output is the
prediction: a ``[N, 2]`` output is read as class probabilities and its last column (the
positive class) is the score; anything else must squeeze to one value per row. Converted
classifiers often put the label first and the probabilities second: reorder or drop
outputs before saving.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from signoff.errors import SignoffError
from signoff.registry.flavors._folder import ModelMeta, Predict, Saved

__all__ = ["FILE", "NAME", "OPTIONS", "RUNS_CODE", "load", "save"]

NAME = "onnx"
FILE = "model.onnx"
OPTIONS: frozenset[str] = frozenset()
RUNS_CODE = False

_INPUT_TYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


def save(
    model: object, folder: Path, example: np.ndarray[Any, Any], options: Mapping[str, object]
) -> Saved:
    """Write ``model.onnx`` from a ``ModelProto``, serialized bytes or a ``.onnx`` path.

    The graph is checked, written with deterministic serialization and run once on the
    input example, which decides the output kind.
    """
    data = _serialized(model)
    session = _session(data)
    run = _runner(session, example.shape[1])
    raw = run(example.astype(np.float64, copy=False))
    output = "score" if raw.ndim == 2 and raw.shape[1] == 2 else "value"
    _one_per_row(raw, output, len(example))
    (folder / FILE).write_bytes(data)
    return Saved(output=output, content_digest=hashlib.sha256(data).hexdigest())


def load(folder: Path, meta: ModelMeta) -> Predict:
    """Open ``model.onnx`` in an onnxruntime ``InferenceSession`` (CPU provider only)."""
    session = _session((folder / FILE).read_bytes())
    run = _runner(session, len(meta.signature))
    output = meta.output
    return lambda matrix: _one_per_row(run(matrix), output, len(matrix))


def _serialized(model: object) -> bytes:
    import onnx

    try:  # onnx raises protobuf, checker and OS errors that share no base but Exception
        if isinstance(model, onnx.ModelProto):
            proto = model
        elif isinstance(model, bytes | bytearray):
            proto = onnx.load_from_string(bytes(model))
        elif isinstance(model, str | Path) and Path(model).suffix == ".onnx":
            proto = onnx.load(str(model))
        else:
            raise SignoffError(
                "the onnx flavor takes an onnx.ModelProto, its serialized bytes or a path to "
                f"a .onnx file, got {type(model).__qualname__}"
            )
        onnx.checker.check_model(proto)
    except SignoffError:
        raise
    except Exception as exc:
        raise SignoffError(f"not a valid ONNX model: {exc}") from None
    data: bytes = proto.SerializeToString(deterministic=True)
    return data


def _session(data: bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings go to stderr, not to the caller
    try:
        # From bytes, not from a path: a graph cannot reach files outside the model this way.
        return onnxruntime.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types, not exported
        raise SignoffError(f"onnxruntime cannot open the model: {exc}") from None


def _runner(session: Any, n_features: int) -> Predict:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise SignoffError(f"an ONNX model must take one input, this one takes {len(inputs)}")
    tensor = inputs[0]
    dtype = _INPUT_TYPES.get(tensor.type)
    if dtype is None:
        raise SignoffError(f"the ONNX input must be a float tensor, not {tensor.type}")
    shape = list(tensor.shape)
    if len(shape) != 2:
        raise SignoffError(f"the ONNX input must have shape [N, F], not {shape}")
    if isinstance(shape[1], int) and shape[1] != n_features:
        raise SignoffError(
            f"the ONNX input takes {shape[1]} features, the signature has {n_features}"
        )
    first_output = session.get_outputs()[0].name
    input_name = tensor.name

    def run(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        out = session.run([first_output], {input_name: matrix.astype(dtype, copy=False)})
        return np.asarray(out[0])

    return run


def _one_per_row(raw: np.ndarray[Any, Any], output: str, rows: int) -> np.ndarray[Any, Any]:
    if raw.dtype.kind not in "biuf":
        raise SignoffError(f"the ONNX model's first output must be numbers, not {raw.dtype}")
    if output == "score" and raw.ndim == 2 and raw.shape[1] == 2:
        return raw[:, -1]
    if raw.size != rows or (raw.ndim > 0 and raw.shape[0] != rows):
        raise SignoffError(
            f"the ONNX model's first output has shape {list(raw.shape)} for {rows} row(s): "
            "expected one value per row or two class probabilities per row"
        )
    return raw.reshape(rows)
