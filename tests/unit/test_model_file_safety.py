"""No scikit-learn model file runs code when it is loaded: crafted skops archives are refused.

The attacker controls the model file and its recorded digest, so every archive here goes
through the real entry point (``load_model`` on a folder with a correct digest), and two
through the endpoint process (its command line and its ``/admin/load``). Each payload would
create a marker file if skops built it; the tests check that loading refuses it with an
``IntegrityError`` naming the type, and that the marker never appears. Most gadgets are
hidden inside a genuine, working LogisticRegression, where nothing else looks wrong.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

import skops.io as sio
from sklearn.cluster import Birch, KMeans
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from conftest import Attacks
from signoff.errors import IntegrityError, SignoffError
from signoff.registry.flavors import (
    Feature,
    LoadedModel,
    ModelMeta,
    folder_digest,
    load_model,
    save_model,
)
from signoff.registry.flavors._folder import write_meta
from signoff.registry.flavors._sklearn import FILE

FEATURES = ("age", "visits", "spend")
Node = dict[str, Any]
Schema = dict[str, Any]


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, len(FEATURES)))
    return x, (x[:, 0] - x[:, 2] > 0).astype(int)


@pytest.fixture(scope="module")
def genuine() -> bytes:
    """A real, fitted LogisticRegression as skops writes it."""
    x, y = _data()
    return bytes(sio.dumps(LogisticRegression().fit(x, y)))


# --------------------------------------------------------------- writing archives by hand


def _text(value: object) -> Node:
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def _sequence(loader: str, cls: str, *items: Node) -> Node:
    return {"__class__": cls, "__module__": "builtins", "__loader__": loader, "content": [*items]}


def _tuple(*items: Node) -> Node:
    return _sequence("TupleNode", "tuple", *items)


def _type(module: str, name: str) -> Node:
    return {"__class__": name, "__module__": module, "__loader__": "TypeNode"}


def _dict(entries: dict[str, Node], key_type: Node | None = None) -> Node:
    key = key_type or _type("builtins", "str")
    return {
        "__class__": "dict",
        "__module__": "builtins",
        "__loader__": "DictNode",
        "content": entries,
        "key_types": _sequence("ListNode", "list", *(key for _ in entries)),
    }


def _call(module: str, name: str, *args: Node) -> Node:
    # skops calls the named callable with these arguments when it builds the node
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": _tuple(*args),
    }


def _function(module: str, name: str) -> Node:
    return {"__class__": name, "__module__": module, "__loader__": "FunctionNode"}


def _rewrite(data: bytes, change: Callable[[Schema], None]) -> bytes:
    """The archive with its schema changed in place and every other member kept."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = {name: source.read(name) for name in source.namelist()}
    schema = json.loads(members.pop("schema.json"))
    change(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
        target.writestr("schema.json", json.dumps(schema))
    return out.getvalue()


def _inject(data: bytes, node: Node, attribute: str = "C") -> bytes:
    """A genuine estimator archive with one attribute's value replaced by ``node``."""

    def change(schema: Schema) -> None:
        schema["content"]["content"][attribute] = node

    return _rewrite(data, change)


def _model_folder(folder: Path, data: bytes, output: str = "score") -> Path:
    """A model folder around an archive; its digest is whatever the attacker recorded."""
    folder.mkdir(parents=True)
    (folder / FILE).write_bytes(data)
    signature = tuple(Feature(name, "float") for name in FEATURES)
    write_meta(folder, ModelMeta(flavor="sklearn", signature=signature, output=output))
    return folder


def _load(folder: Path) -> LoadedModel:
    return load_model(folder, expected_digest=folder_digest(folder))


# ------------------------------------------------------------------ payloads that run code


class _OpensFile:
    """Unpickling this opens (creates) a file: what a pickle payload can do at load."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _python(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _runstring(marker: Path, tmp: Path) -> Node:
    return _call("numpy.testing._private.utils", "runstring", _text(_python(marker)), _dict({}))


def _eval(marker: Path, tmp: Path) -> Node:
    return _call("builtins", "eval", _text(_python(marker)))


def _exec(marker: Path, tmp: Path) -> Node:
    return _call("builtins", "exec", _text(_python(marker)))


def _os_system(marker: Path, tmp: Path) -> Node:
    return _call("os", "system", _text(f"touch '{marker}'"))


def _posix_system(marker: Path, tmp: Path) -> Node:
    return _call("posix", "system", _text(f"touch '{marker}'"))


def _popen(marker: Path, tmp: Path) -> Node:
    argv = _sequence("ListNode", "list", _text("touch"), _text(str(marker)))
    return _call("subprocess", "Popen", argv)


def _numpy_load_pickle(marker: Path, tmp: Path) -> Node:
    payload = tmp / "payload.pkl"
    payload.write_bytes(pickle.dumps(_OpensFile(marker)))
    # numpy.load(file, mmap_mode=None, allow_pickle=True) unpickles a file that is not .npy
    return _call("numpy", "load", _text(str(payload)), _text(None), _text(True))


def _sklearn_script(marker: Path, tmp: Path) -> Node:
    # a scikit-learn test helper, not an estimator: it runs its argument in a new Python
    return _call(
        "sklearn.utils._testing", "assert_run_python_script_without_output", _text(_python(marker))
    )


def _loss_node(marker: Path, tmp: Path) -> Node:
    # a loss node calls the class it names with arguments from the file
    return {
        "__class__": "runstring",
        "__module__": "numpy.testing._private.utils",
        "__loader__": "LossNode",
        "__reduce__": {"args": _tuple(_text(_python(marker)), _dict({}))},
        "content": _dict({}),
    }


def _dict_key_type(marker: Path, tmp: Path) -> Node:
    # a dict node calls each key's type on the key
    script = _type("sklearn.utils._testing", "assert_run_python_script_without_output")
    return _dict({_python(marker): _text(1)}, key_type=script)


def _operator_call(marker: Path, tmp: Path) -> Node:
    runstring = _function("numpy.testing._private.utils", "runstring")
    return {
        "__class__": "call",
        "__module__": "operator",
        "__loader__": "OperatorFuncNode",
        "attrs": _tuple(runstring, _text(_python(marker)), _dict({})),
    }


GADGETS: dict[str, tuple[Callable[[Path, Path], Node], str]] = {
    "numpy-runstring": (_runstring, "numpy.testing._private.utils.runstring"),
    "builtins-eval": (_eval, "builtins.eval"),
    "builtins-exec": (_exec, "builtins.exec"),
    "os-system": (_os_system, "os.system"),
    "posix-system": (_posix_system, "posix.system"),
    "subprocess-popen": (_popen, "subprocess.Popen"),
    "numpy-load-pickle": (_numpy_load_pickle, "numpy.load"),
    "sklearn-utils-script": (
        _sklearn_script,
        "sklearn.utils._testing.assert_run_python_script_without_output",
    ),
    "loss-node-runstring": (_loss_node, "numpy.testing._private.utils.runstring (LossNode)"),
    "dict-key-type-script": (
        _dict_key_type,
        "sklearn.utils._testing.assert_run_python_script_without_output (TypeNode)",
    ),
    "operator-call-runstring": (_operator_call, "operator.call (OperatorFuncNode)"),
}


@pytest.mark.parametrize("gadget", sorted(GADGETS))
def test_a_gadget_hidden_in_a_genuine_model_is_refused_before_it_runs(
    gadget: str, genuine: bytes, tmp_path: Path, attacks: Attacks
) -> None:
    build, named = GADGETS[gadget]
    marker = tmp_path / "marker"
    folder = _model_folder(tmp_path / "model", _inject(genuine, build(marker, tmp_path)))
    with pytest.raises(IntegrityError, match="does not trust") as refused:
        _load(folder)
    assert named in str(refused.value)
    assert not marker.exists()
    attacks.record("code-running gadget hidden in a genuine model", "model file", 1, 1)


@pytest.mark.parametrize("gadget", ["numpy-runstring", "builtins-exec", "posix-system"])
def test_a_gadget_as_the_whole_file_is_refused(
    gadget: str, tmp_path: Path, attacks: Attacks
) -> None:
    build, named = GADGETS[gadget]
    marker = tmp_path / "marker"
    schema = {**build(marker, tmp_path), "protocol": 2, "_skops_version": "0.16.0"}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as target:
        target.writestr("schema.json", json.dumps(schema))
    folder = _model_folder(tmp_path / "model", archive.getvalue(), output="value")
    with pytest.raises(IntegrityError, match=named.replace(".", r"\.")):
        _load(folder)
    assert not marker.exists()
    attacks.record("code-running gadget as the whole model file", "model file", 1, 1)


def test_the_genuine_archive_loads_through_the_same_path(genuine: bytes, tmp_path: Path) -> None:
    # the control: the folder helper and the rewriting keep a real model loadable
    x, y = _data()
    folder = _model_folder(tmp_path / "model", _rewrite(genuine, lambda schema: None))
    expected = LogisticRegression().fit(x, y).predict_proba(x)[:, -1]
    np.testing.assert_array_equal(_load(folder).predict(x), expected)


# ------------------------------------------------------- files that lie about their nodes


def _bit_generator_named(name: str) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        generator = schema["content"]["content"]["_feature_subsample_rng"]
        generator["content"]["bit_generator"]["content"]["bit_generator"] = _text(name)

    return change


def _protocol(value: object) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        schema["protocol"] = value
        # protocol 0 read functions from "content", not from the names that were checked
        schema["content"]["content"]["C"] = {
            **_function("numpy", "add"),
            "content": {"module_path": "posix", "function": "system"},
        }

    return change


def _reused_id(schema: Schema) -> None:
    # skops builds the first node with an id and reuses it wherever the id comes again
    attrs = schema["content"]["content"]
    attrs["C"]["__id__"] = attrs["penalty"]["__id__"]


def _set_attr(attribute: str, node: Node) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        schema["content"]["content"][attribute] = node

    return change


def _without_ids(node: object) -> Any:
    if isinstance(node, list):
        return [_without_ids(item) for item in node]
    if isinstance(node, dict):
        return {k: _without_ids(v) for k, v in node.items() if k != "__id__"}
    return node


def _method(schema: Schema) -> None:
    # the bound method LogisticRegression.fit of a copy of the estimator
    estimator = _without_ids(schema)
    estimator.pop("protocol")
    schema["content"]["content"]["C"] = {
        "__class__": estimator["__class__"],
        "__module__": estimator["__module__"],
        "__loader__": "MethodNode",
        "content": {"func": "fit", "obj": estimator},
    }


def _array_called(schema: Schema) -> None:
    # an array node calls the class it names on the array, unless it is numpy.ndarray
    attrs = schema["content"]["content"]
    attrs["coef_"] = {**attrs["coef_"], "__class__": "system", "__module__": "posix"}


def _unknown_loader(schema: Schema) -> None:
    schema["content"]["content"]["C"] = {**_text(1.0), "__loader__": "PickleNode"}


LIES: dict[str, tuple[Callable[[Schema], None], str]] = {
    "protocol-0-function": (_protocol(0), "skops protocol 0"),
    "protocol-from-the-future": (_protocol(3), "skops protocol 3"),
    "protocol-true": (_protocol(True), "skops protocol True"),
    "protocol-a-list": (_protocol([2]), "skops protocol [2]"),
    "reused-id": (_reused_id, "stands for two different objects"),
    "method-node": (_method, "LogisticRegression (MethodNode)"),
    "array-of-posix-system": (_array_called, "posix.system (NdArrayNode)"),
    "unknown-loader": (_unknown_loader, "builtins.str (PickleNode)"),
    "partial-of-exec": (
        _set_attr(
            "C",
            {
                "__class__": "partial",
                "__module__": "functools",
                "__loader__": "PartialNode",
                "content": {
                    "func": _function("builtins", "exec"),
                    "args": _tuple(_text("pass")),
                    "kwds": _dict({}),
                    "namespace": _text(None),
                },
            },
        ),
        "builtins.exec (FunctionNode)",
    ),
    "allowed-name-of-another-kind": (
        _set_attr("C", _type("sklearn.utils.validation", "check_array")),
        "sklearn.utils.validation.check_array (TypeNode)",
    ),
    "ufunc-skops-trusts": (_set_attr("C", _function("numpy", "add")), "numpy.add (FunctionNode)"),
}


LYING_ARCHIVE = "archive whose nodes lie (protocol, reused id, method, loader, bit generator...)"


@pytest.mark.parametrize("lie", sorted(LIES))
def test_an_archive_whose_nodes_do_not_add_up_is_refused(
    lie: str, genuine: bytes, tmp_path: Path, attacks: Attacks
) -> None:
    change, reason = LIES[lie]
    folder = _model_folder(tmp_path / "model", _rewrite(genuine, change))
    with pytest.raises(IntegrityError) as refused:
        _load(folder)
    assert reason in str(refused.value)
    attacks.record(LYING_ARCHIVE, "model file", 1, 1)


def test_a_random_generator_naming_another_numpy_random_callable_is_refused(
    tmp_path: Path, attacks: Attacks
) -> None:
    x, y = _data()
    data = sio.dumps(HistGradientBoostingClassifier(max_iter=3).fit(x, y))
    folder = _model_folder(tmp_path / "model", _rewrite(data, _bit_generator_named("seed")))
    with pytest.raises(IntegrityError, match=r"numpy\.random\.seed \(bit_generator\)"):
        _load(folder)
    attacks.record(LYING_ARCHIVE, "model file", 1, 1)


def _nested(depth: int) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as target:
        target.writestr("schema.json", "[" * depth + "]" * depth)
    return archive.getvalue()


def _zip_with(name: str, content: str) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as target:
        target.writestr(name, content)
    return archive.getvalue()


def _corrupt_schema() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as target:
        target.writestr("schema.json", json.dumps(_text("x" * 1000)))
    data = bytearray(archive.getvalue())
    start = data.index(b"schema.json") + len("schema.json")  # the first member's data
    data[start : start + 8] = b"\xff" * 8
    return bytes(data)


MALFORMED: dict[str, bytes] = {
    "schema-corrupt": _corrupt_schema(),
    "not-a-zip": b"PK\x03\x04 certainly not a zip",
    "no-schema": _zip_with("model.json", "{}"),
    "schema-not-json": _zip_with("schema.json", "{nope"),
    "schema-a-list": _zip_with("schema.json", "[]"),
    "schema-nested-too-deep": _nested(200_000),
    "class-not-a-string": _zip_with(
        "schema.json",
        json.dumps({"__loader__": "ObjectNode", "__module__": "os", "__class__": 1, "protocol": 2}),
    ),
    "id-not-an-integer": _zip_with(
        "schema.json", json.dumps({**_text(1), "__id__": "1", "protocol": 2})
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_archive_is_refused_as_an_integrity_error(
    case: str, tmp_path: Path, attacks: Attacks
) -> None:
    folder = _model_folder(tmp_path / "model", MALFORMED[case], output="value")
    with pytest.raises(IntegrityError, match=r"model\.skops is refused"):
        _load(folder)
    attacks.record("malformed archive (corrupt, not a zip, 200,000 deep...)", "model file", 1, 1)


# ------------------------------------------------------------------------- save refuses too


OUTSIDE_ALLOW_LIST = "function or estimator skops trusts but signoff does not, saved or loaded"


def test_save_and_load_refuse_a_function_skops_trusts_by_default(
    tmp_path: Path, attacks: Attacks
) -> None:
    # skops trusts numpy ufuncs as function nodes; this flavor trusts one function only
    x, y = _data()
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(abs(x), y)
    assert sio.get_untrusted_types(data=sio.dumps(model)) == []
    example = {f: x[:3, i] for i, f in enumerate(FEATURES)}
    refused = 0
    with pytest.raises(SignoffError, match=r"numpy\.log1p \(FunctionNode\).*flavor=\"python\""):
        save_model(model, tmp_path / "m", input_example=example)
    assert not (tmp_path / "m" / FILE).exists()
    refused += 1
    folder = _model_folder(tmp_path / "crafted", sio.dumps(model))
    with pytest.raises(IntegrityError, match=r"numpy\.log1p \(FunctionNode\)"):
        _load(folder)
    refused += 1
    attacks.record(OUTSIDE_ALLOW_LIST, "model file", refused, refused)


@pytest.mark.parametrize("estimator", [KMeans(n_clusters=2, n_init=1), Birch()])
def test_save_refuses_an_estimator_outside_the_supported_ones(
    estimator: Any, tmp_path: Path, attacks: Attacks
) -> None:
    # skops trusts every scikit-learn estimator by default (KMeans) or cannot write it (Birch)
    x, _ = _data()
    model = estimator.fit(x)
    example = {f: x[:3, i] for i, f in enumerate(FEATURES)}
    with pytest.raises(SignoffError, match='flavor="python"') as refused:
        save_model(model, tmp_path / "m", input_example=example)
    assert not isinstance(refused.value, IntegrityError)
    assert not (tmp_path / "m" / FILE).exists()
    attacks.record(OUTSIDE_ALLOW_LIST, "model file", 1, 1)


def test_load_refuses_an_estimator_skops_trusts_by_default(
    tmp_path: Path, attacks: Attacks
) -> None:
    x, _ = _data()
    data = sio.dumps(KMeans(n_clusters=2, n_init=1).fit(x))
    assert sio.get_untrusted_types(data=data) == []
    folder = _model_folder(tmp_path / "model", data, output="value")
    with pytest.raises(IntegrityError, match=r"sklearn\.cluster\._kmeans\.KMeans \(ObjectNode\)"):
        _load(folder)
    attacks.record(OUTSIDE_ALLOW_LIST, "model file", 1, 1)


# ------------------------------------------------------------------- the endpoint process


ENDPOINT_GADGET = "gadget model handed to the endpoint process (command line, /admin/load)"


def test_the_endpoint_process_refuses_the_file_and_exits_3(
    genuine: bytes, tmp_path: Path, attacks: Attacks
) -> None:
    marker = tmp_path / "marker"
    folder = _model_folder(tmp_path / "model", _inject(genuine, _runstring(marker, tmp_path)))
    result = subprocess.run(
        [sys.executable, "-m", "signoff.serving", "--name", "churn", "--model-dir", str(folder),
         "--digest", folder_digest(folder), "--model-version", "v1", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "numpy.testing._private.utils.runstring" in lines[0]
    assert not marker.exists()
    attacks.record(ENDPOINT_GADGET, "model file", 1, 1)


def test_the_endpoint_admin_load_refuses_the_file_with_409(
    genuine: bytes, tmp_path: Path, attacks: Attacks
) -> None:
    from starlette.exceptions import StarletteDeprecationWarning

    from signoff.serving.app import create_app

    with warnings.catch_warnings():
        # Starlette wants the httpx2 fork for its test client; plain httpx still works
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from fastapi.testclient import TestClient

    good = _model_folder(tmp_path / "v1", genuine)
    marker = tmp_path / "marker"
    bad = _model_folder(tmp_path / "v2", _inject(genuine, _sklearn_script(marker, tmp_path)))
    app = create_app("churn", _load(good), "v1", folder_digest(good), admin_token="secret")
    client = TestClient(app, client=("127.0.0.1", 50000))
    body = {"model_dir": str(bad), "digest": folder_digest(bad), "model_version": "v2"}
    response = client.post("/admin/load", json=body, headers={"Authorization": "Bearer secret"})
    assert response.status_code == 409, response.text
    assert "assert_run_python_script_without_output" in response.json()["detail"]
    state = client.get("/admin/state", headers={"Authorization": "Bearer secret"}).json()
    assert [v["model_version"] for v in state["versions"]] == ["v1"]
    assert not marker.exists()
    attacks.record(ENDPOINT_GADGET, "model file", 1, 1)
