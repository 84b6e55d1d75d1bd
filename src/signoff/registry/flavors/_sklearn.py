"""scikit-learn flavor: a skops archive, loaded only when every type it names is allow-listed.

Trust is decided before skops builds anything. The archive's ``schema.json`` is walked node
by node and every (node kind, type) pair it names must be in
:data:`~signoff.registry.flavors._sklearn_trusted.TRUSTED_NODES`; ``skops.io.get_untrusted_types``
is asked as well and everything it reports must be allow-listed too. Only then is the same
byte string handed to ``skops.io.loads``, trusting exactly what skops reported. The walk
exists because skops trusts some things by default (every scikit-learn estimator as an
object node, numpy ufuncs as functions) and because a file chooses its own protocol and the
node kinds that read it; the allow-list pins both.

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
import io
import json
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from signoff.errors import IntegrityError, SignoffError
from signoff.registry.flavors._folder import ModelMeta, Predict, Saved
from signoff.registry.flavors._sklearn_trusted import (
    BIT_GENERATOR,
    SKOPS_PROTOCOLS,
    TRUSTED_NODES,
    TRUSTED_TYPES,
)

__all__ = [
    "FILE",
    "NAME",
    "OPTIONS",
    "RUNS_CODE",
    "ArchiveError",
    "load",
    "named_types",
    "refused_types",
    "save",
    "skops_content_digest",
]

NAME = "sklearn"
FILE = "model.skops"
OPTIONS: frozenset[str] = frozenset()
RUNS_CODE = False

_SCHEMA = "schema.json"
_UNORDERED = frozenset({"SetNode"})  # their items come out in hash order, which varies
_PYTHON_HINT = 'save it with flavor="python" and a code file instead'


class ArchiveError(SignoffError, ValueError):
    """A skops archive that cannot be read as one: not a zip, no valid schema, ambiguous nodes."""


def save(
    model: object, folder: Path, example: np.ndarray[Any, Any], options: Mapping[str, object]
) -> Saved:
    """Write ``model.skops``; refuse a model that :func:`load` would refuse."""
    import skops.io as sio

    try:
        data: bytes = sio.dumps(model)
    except Exception as exc:  # skops refuses what it cannot represent; the model is user code
        raise SignoffError(f"skops cannot write this model ({exc}); {_PYTHON_HINT}") from None
    refused, _ = refused_types(data)
    if refused:
        raise SignoffError(
            "the model holds types the sklearn flavor does not trust: "
            f"{', '.join(refused)}; {_PYTHON_HINT}"
        )
    path = folder / FILE
    path.write_bytes(data)
    output = "score" if hasattr(model, "predict_proba") else "value"
    return Saved(output=output, content_digest=skops_content_digest(path))


def load(folder: Path, meta: ModelMeta) -> Predict:
    """Load ``model.skops`` after checking every type it names against the allow-list."""
    import skops.io as sio

    path = folder / FILE
    data = path.read_bytes()  # checked and loaded from the same bytes, read once
    try:
        refused, untrusted = refused_types(data)
    except ArchiveError as exc:
        raise IntegrityError(f"{FILE} is refused: {exc}") from None
    if refused:
        raise IntegrityError(
            f"{FILE} names types the sklearn flavor does not trust: {', '.join(refused)}; "
            "it is not loaded"
        )
    model: Any = sio.loads(data, trusted=untrusted)
    if meta.output == "score":
        return lambda matrix: model.predict_proba(matrix)[:, -1]
    predict: Predict = model.predict
    return predict


def refused_types(data: bytes) -> tuple[list[str], list[str]]:
    """What in a skops archive is not allow-listed, and the types to pass skops when nothing is.

    Returns ``(refused, untrusted)``: ``refused`` describes each offending type with the node
    kind that names it (empty when the archive may be loaded); ``untrusted`` is what
    ``skops.io.get_untrusted_types`` reported, all of it allow-listed, to be passed to
    ``skops.io.loads`` as ``trusted``. Nothing the archive names is imported or constructed.
    """
    import skops.io as sio

    with _open(data) as archive:
        schema = _read_schema(archive)
        protocol = schema.get("protocol")
        if type(protocol) is not int or protocol not in SKOPS_PROTOCOLS:  # a bool is no protocol
            # a file picks the node classes that read it by its protocol; only the ones the
            # allow-list was derived with are accepted
            return [f"skops protocol {protocol!r} (accepted: {sorted(SKOPS_PROTOCOLS)})"], []
        named = _named_types(schema, archive)
    refused = sorted(
        f"{name} ({kind})" for kind, name in named if name not in TRUSTED_NODES.get(kind, ())
    )
    if refused:
        return refused, []
    try:
        untrusted: list[str] = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops' own reading of a malformed node
        raise ArchiveError(f"skops cannot read it: {type(exc).__name__}: {exc}") from None
    return sorted(set(untrusted) - TRUSTED_TYPES), untrusted


def named_types(data: bytes) -> set[tuple[str, str]]:
    """Every ``(node kind, fully qualified type)`` the ``schema.json`` of a skops archive names.

    Every JSON object with a ``__loader__`` is a node skops may build, wherever it sits, so
    all of them are visited. A ``Generator`` node also names its bit generator (kind
    :data:`BIT_GENERATOR`), which skops reads from a plain string inside it. Nodes that
    share an ``__id__`` must have the same content: skops builds one of them and reuses it
    for the others, so a difference would let the text that was checked and the object that
    is built disagree.
    """
    with _open(data) as archive:
        return _named_types(_read_schema(archive), archive)


def _named_types(schema: dict[str, Any], archive: zipfile.ZipFile) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    seen: dict[int, _Seen] = {}
    members = set(archive.namelist())
    stack: list[object] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        if "__loader__" not in item:
            continue
        kind, module, cls = item["__loader__"], item.get("__module__"), item.get("__class__")
        if not (isinstance(kind, str) and isinstance(module, str) and isinstance(cls, str)):
            raise ArchiveError(f"a node without a string loader, module and class: {kind!r}")
        found.add((kind, f"{module}.{cls}"))
        if kind == "RandomGeneratorNode":
            found.add((BIT_GENERATOR, f"numpy.random.{_bit_generator_name(item)}"))
        _check_id(item, seen, archive, members)
    return found


@contextmanager
def _open(data: bytes) -> Iterator[zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"not a zip archive ({exc})") from None
    with archive:
        try:
            yield archive
        except (
            zipfile.BadZipFile,
            KeyError,
            OSError,
            NotImplementedError,
            zlib.error,
            RecursionError,
        ) as exc:
            # a member that is missing, corrupt or packed in a way zipfile cannot read, or a
            # schema nested beyond Python's stack
            raise ArchiveError(f"unreadable ({type(exc).__name__}: {exc})") from None


def _read_schema(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        schema = json.loads(archive.read(_SCHEMA))
    except ValueError as exc:
        raise ArchiveError(f"{_SCHEMA} is not JSON ({exc})") from None
    if not isinstance(schema, dict) or "__loader__" not in schema:
        raise ArchiveError(f"{_SCHEMA} does not describe an object")
    return schema


def _bit_generator_name(node: dict[str, Any]) -> str:
    # the same path skops reads the name from: content.bit_generator is a dict node whose
    # "bit_generator" entry is a JSON string
    try:
        name = json.loads(node["content"]["bit_generator"]["content"]["bit_generator"]["content"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArchiveError(f"a random generator without a bit generator name ({exc})") from None
    if not isinstance(name, str):
        raise ArchiveError(f"a random generator whose bit generator is {name!r}")
    return name


def _check_id(
    node: dict[str, Any], seen: dict[int, _Seen], archive: zipfile.ZipFile, members: set[str]
) -> None:
    node_id = node.get("__id__")
    if node_id is None:
        return
    if isinstance(node_id, bool) or not isinstance(node_id, int):
        raise ArchiveError(f"a node id that is not an integer: {node_id!r}")
    first = seen.get(node_id)
    if first is None:
        seen[node_id] = _Seen(node)
        return
    if first.node is node or first.node == node:
        return
    # A genuine archive may write one object twice: same content, but fresh ids and member
    # names for the temporaries inside it (state dicts, arrays), so those are normalized.
    if first.text(archive, members) != _normalized_text(node, archive, members):
        raise ArchiveError(f"node id {node_id} stands for two different objects")


class _Seen:
    """The first node with an id, and its normalized text (computed when first needed)."""

    __slots__ = ("_text", "node")

    def __init__(self, node: dict[str, Any]) -> None:
        self.node = node
        self._text: str | None = None

    def text(self, archive: zipfile.ZipFile, members: set[str]) -> str:
        if self._text is None:
            self._text = _normalized_text(self.node, archive, members)
        return self._text


def _normalized_text(node: object, archive: zipfile.ZipFile, members: set[str]) -> str:
    return json.dumps(_normalize(node, archive, members), sort_keys=True)


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
