"""How a model is written to and read from a folder, per flavor, without unpickling.

A model folder holds the flavor's own files plus ``signoff-model.json`` (flavor, signature,
output kind, content digest). Its digest is the sha256 over every file's relative path and
content, so a model is identified by what is on disk, and :func:`load_model` refuses a
folder whose digest is not the expected one before it reads anything else.

Flavors: ``sklearn`` (skops, trusted types only), ``xgboost`` (native UBJSON), ``onnx``
(onnxruntime on the CPU) and ``python`` (a code file and artifacts; loading runs the code,
so it needs an expected digest).
"""

from __future__ import annotations

from pathlib import Path

from signoff.errors import IntegrityError, SignoffError
from signoff.registry.flavors import _onnx, _python, _sklearn, _xgboost
from signoff.registry.flavors._folder import (
    META_FILE,
    FlavorModule,
    ModelMeta,
    folder_digest,
    read_meta,
    write_meta,
)
from signoff.registry.flavors._loaded import LoadedModel
from signoff.registry.flavors._signature import (
    Feature,
    SignatureError,
    example_matrix,
    infer_signature,
)

__all__ = [
    "FLAVORS",
    "META_FILE",
    "Feature",
    "LoadedModel",
    "ModelMeta",
    "SignatureError",
    "detect_flavor",
    "folder_digest",
    "infer_signature",
    "load_model",
    "read_meta",
    "save_model",
]

_MODULES: dict[str, FlavorModule] = {m.NAME: m for m in (_sklearn, _xgboost, _onnx, _python)}
FLAVORS: frozenset[str] = frozenset(_MODULES)
"""The names of the flavors this registry can save and load."""


def detect_flavor(model: object) -> str:
    """Name the flavor of a model object: from its class's module, or a ``.onnx`` path."""
    cls = type(model)
    module = cls.__module__
    if module.startswith("xgboost"):
        return "xgboost"
    if module.startswith("sklearn"):
        return "sklearn"
    if module.startswith("onnx") and cls.__name__ == "ModelProto":
        return "onnx"
    if isinstance(model, str | Path) and Path(model).suffix == ".onnx":
        return "onnx"
    hint = ""
    if callable(getattr(model, "predict", None)):
        hint = '; for an object with predict(), use flavor="python" with code=<file>'
    raise SignoffError(
        f"cannot save a model of type {cls.__qualname__}: the flavor is not detected "
        f"(scikit-learn, XGBoost, ONNX){hint}"
    )


def save_model(
    model: object,
    folder: Path,
    *,
    input_example: object,
    flavor: str | None = None,
    **options: object,
) -> ModelMeta:
    """Write a model and its metadata into ``folder`` (created) in its flavor's format.

    ``options`` are the flavor's own (only ``python`` has any: ``code``, ``artifacts``,
    ``output``); an option the flavor does not take is refused.
    """
    name = flavor or detect_flavor(model)
    codec = _flavor_module(name)
    unknown = sorted(set(options) - codec.OPTIONS)
    if unknown:
        raise SignoffError(f"the {name} flavor takes no option(s) {', '.join(unknown)}")
    signature = infer_signature(input_example)
    example = example_matrix(input_example, signature)
    folder.mkdir(parents=True, exist_ok=True)
    saved = codec.save(model, folder, example, options)
    meta = ModelMeta(
        flavor=name,
        signature=signature,
        output=saved.output,
        content_digest=saved.content_digest,
    )
    write_meta(folder, meta)
    return meta


def load_model(folder: Path, *, expected_digest: str | None) -> LoadedModel:
    """Load a model folder after checking its digest.

    The digest is checked first, before the metadata or any model file is read. A flavor
    that runs code from the folder (``python``) is refused without an expected digest.
    """
    if expected_digest is not None:
        actual = folder_digest(folder)
        if actual != expected_digest:
            raise IntegrityError(
                f"model at {folder} has digest {actual[:12]}…, expected {expected_digest[:12]}…"
            )
    meta = read_meta(folder)
    codec = _flavor_module(meta.flavor)
    if codec.RUNS_CODE and expected_digest is None:
        raise IntegrityError(
            f"a {meta.flavor} model runs code from its folder: it is loaded only against an "
            "expected digest"
        )
    return LoadedModel(meta, codec.load(folder, meta))


def _flavor_module(name: str) -> FlavorModule:
    codec = _MODULES.get(name)
    if codec is None:
        raise SignoffError(
            f"unknown model flavor {name!r}: expected one of {', '.join(sorted(_MODULES))}"
        )
    return codec
