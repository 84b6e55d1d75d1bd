"""Model flavors: save → load → predict round trips, digests, and what loading refuses."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")
pytest.importorskip("xgboost")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx
import skops.io as sio
import xgboost
from onnx import TensorProto, helper, numpy_helper
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from signoff.errors import IntegrityError, SignoffError
from signoff.registry.flavors import (
    FLAVORS,
    META_FILE,
    LoadedModel,
    ModelMeta,
    SignatureError,
    detect_flavor,
    folder_digest,
    load_model,
    read_meta,
    save_model,
)
from signoff.registry.flavors._sklearn import skops_content_digest

FEATURES = ("age", "visits", "spend")


def _data(seed: int = 0, n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y_class = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(int)
    y_value = 2.0 * x[:, 0] - x[:, 2] + rng.normal(scale=0.1, size=n)
    return x, y_class, y_value


def _columns(x: np.ndarray) -> dict[str, list[float]]:
    return {name: x[:, i].tolist() for i, name in enumerate(FEATURES)}


def _round_trip(model: object, folder: Path, x: np.ndarray, **kwargs: Any) -> LoadedModel:
    save_model(model, folder, input_example=_columns(x[:5]), **kwargs)
    return load_model(folder, expected_digest=folder_digest(folder))


# ---------------------------------------------------------------- scikit-learn


def test_sklearn_classifier_round_trip_scores_the_positive_class(tmp_path: Path) -> None:
    x, y, _ = _data()
    model = LogisticRegression().fit(x, y)
    loaded = _round_trip(model, tmp_path / "m", x)
    assert loaded.meta.flavor == "sklearn"
    assert loaded.meta.output == "score"
    assert loaded.feature_names == list(FEATURES)
    np.testing.assert_allclose(loaded.predict(x), model.predict_proba(x)[:, 1])


def test_sklearn_regressor_round_trip_predicts_values(tmp_path: Path) -> None:
    x, _, y = _data()
    model = Ridge(alpha=0.5).fit(x, y)
    loaded = _round_trip(model, tmp_path / "m", x)
    assert loaded.meta.output == "value"
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))


def test_sklearn_pipeline_round_trip(tmp_path: Path) -> None:
    x, y, _ = _data()
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=0.3))]).fit(x, y)
    loaded = _round_trip(model, tmp_path / "m", x)
    assert loaded.meta.output == "score"
    np.testing.assert_allclose(loaded.predict(x), model.predict_proba(x)[:, 1])


def test_sklearn_rows_are_checked_against_the_signature(tmp_path: Path) -> None:
    x, y, _ = _data()
    loaded = _round_trip(LogisticRegression().fit(x, y), tmp_path / "m", x)
    with pytest.raises(SignatureError, match="missing field"):
        loaded.rows_to_matrix([{"age": 1.0, "visits": 2.0}])
    with pytest.raises(SignatureError, match="must be a number"):
        loaded.rows_to_matrix([{"age": 1.0, "visits": "2", "spend": 0.0}])


class _Doubler(TransformerMixin, BaseEstimator):
    """A user-defined transformer: its type is not one the sklearn flavor trusts."""

    def fit(self, x: np.ndarray, y: object = None) -> _Doubler:
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return x * 2


def test_sklearn_save_refuses_a_model_with_untrusted_types(tmp_path: Path) -> None:
    x, y, _ = _data()
    model = Pipeline([("double", _Doubler()), ("clf", LogisticRegression())]).fit(x, y)
    with pytest.raises(SignoffError, match='flavor="python"'):
        save_model(model, tmp_path / "m", input_example=_columns(x[:5]))
    assert not (tmp_path / "m" / "model.skops").exists()


def test_sklearn_content_digest_is_stable_across_fits_and_saves(tmp_path: Path) -> None:
    x, y, _ = _data()

    def fit(seed: int) -> RandomForestClassifier:
        return RandomForestClassifier(n_estimators=5, max_depth=3, random_state=seed).fit(x, y)

    example = _columns(x[:5])
    first = save_model(fit(7), tmp_path / "a", input_example=example)
    again = save_model(fit(7), tmp_path / "b", input_example=example)
    other = save_model(fit(8), tmp_path / "c", input_example=example)
    assert first.content_digest is not None
    assert first.content_digest == again.content_digest
    assert first.content_digest != other.content_digest
    # The folder digest stays the byte-level integrity check: it is what load_model compares.
    load_model(tmp_path / "a", expected_digest=folder_digest(tmp_path / "a"))


def test_skops_content_digest_ignores_set_order(tmp_path: Path) -> None:
    # 1 and 9 share a slot in a small set: the iteration order follows insertion order.
    one_first, nine_first = {1}, {9}
    one_first.add(9)
    nine_first.add(1)
    assert list(one_first) != list(nine_first)
    sio.dump({"ids": one_first}, tmp_path / "a.skops")
    sio.dump({"ids": nine_first}, tmp_path / "b.skops")
    sio.dump({"ids": {1, 8}}, tmp_path / "c.skops")
    digest = skops_content_digest(tmp_path / "a.skops")
    assert digest == skops_content_digest(tmp_path / "b.skops")
    assert digest != skops_content_digest(tmp_path / "c.skops")


# ---------------------------------------------------------------- XGBoost


def test_xgboost_classifier_round_trip(tmp_path: Path) -> None:
    x, y, _ = _data()
    model = xgboost.XGBClassifier(n_estimators=15, max_depth=3, random_state=1).fit(x, y)
    loaded = _round_trip(model, tmp_path / "m", x)
    assert (loaded.meta.flavor, loaded.meta.output) == ("xgboost", "score")
    np.testing.assert_allclose(loaded.predict(x), model.predict_proba(x)[:, 1], rtol=1e-6)


def test_xgboost_regressor_round_trip_predicts_values(tmp_path: Path) -> None:
    x, _, y = _data()
    model = xgboost.XGBRegressor(n_estimators=15, max_depth=3, random_state=1).fit(x, y)
    loaded = _round_trip(model, tmp_path / "m", x)
    assert loaded.meta.output == "value"
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)


def test_xgboost_raw_booster_output_follows_its_objective(tmp_path: Path) -> None:
    x, y, _ = _data()
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(x, label=y), 5
    )
    loaded = _round_trip(booster, tmp_path / "m", x, flavor="xgboost")
    assert loaded.meta.output == "score"
    np.testing.assert_allclose(loaded.predict(x), booster.predict(xgboost.DMatrix(x)))


def test_xgboost_content_digest_is_stable_across_fits(tmp_path: Path) -> None:
    x, y, _ = _data()
    digests = []
    for name in ("a", "b"):
        model = xgboost.XGBClassifier(
            n_estimators=10, max_depth=3, subsample=0.8, colsample_bytree=0.8, random_state=3
        ).fit(x, y)
        digests.append(save_model(model, tmp_path / name, input_example=x[:5]).content_digest)
    assert digests[0] is not None
    assert digests[0] == digests[1]


# ---------------------------------------------------------------- ONNX

WEIGHTS = np.array([0.5, -1.25, 2.0], dtype=np.float32)
BIAS = np.float32(0.25)


def _onnx_model(*, probabilities: bool) -> Any:
    """x @ w + b, or the two class probabilities [1 - p, p] of its sigmoid p."""
    init = [
        numpy_helper.from_array(WEIGHTS.reshape(-1, 1), "w"),
        numpy_helper.from_array(np.array([BIAS]), "b"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"])]
    if probabilities:
        init.append(numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"))
        nodes += [
            helper.make_node("Add", ["xw", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["p"]),
            helper.make_node("Sub", ["one", "p"], ["q"]),
            helper.make_node("Concat", ["q", "p"], ["y"], axis=1),
        ]
        width = 2
    else:
        nodes.append(helper.make_node("Add", ["xw", "b"], ["y"]))
        width = 1
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, len(WEIGHTS)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # understood by every onnxruntime the ml extra allows
    return model


def test_onnx_linear_round_trip_matches_numpy(tmp_path: Path) -> None:
    x, _, _ = _data()
    proto = _onnx_model(probabilities=False)
    assert detect_flavor(proto) == "onnx"
    loaded = _round_trip(proto, tmp_path / "m", x)
    assert (loaded.meta.flavor, loaded.meta.output) == ("onnx", "value")
    assert (tmp_path / "m" / "model.onnx").is_file()
    expected = x.astype(np.float32) @ WEIGHTS + BIAS
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-5, atol=1e-6)
    assert len(loaded.predict(x[:1])) == 1


def test_onnx_two_probabilities_give_the_positive_class_score(tmp_path: Path) -> None:
    x, _, _ = _data()
    data = _onnx_model(probabilities=True).SerializeToString()
    loaded = _round_trip(data, tmp_path / "m", x, flavor="onnx")
    assert loaded.meta.output == "score"
    logit = x.astype(np.float32) @ WEIGHTS + BIAS
    np.testing.assert_allclose(loaded.predict(x), 1 / (1 + np.exp(-logit)), rtol=1e-5)


def test_onnx_from_a_path_has_a_stable_content_digest(tmp_path: Path) -> None:
    x, _, _ = _data()
    path = tmp_path / "linear.onnx"
    onnx.save(_onnx_model(probabilities=False), str(path))
    assert detect_flavor(path) == "onnx"
    first = save_model(path, tmp_path / "a", input_example=x[:4])
    again = save_model(_onnx_model(probabilities=False), tmp_path / "b", input_example=x[:4])
    assert first.content_digest == again.content_digest
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")


def test_onnx_refuses_a_graph_that_does_not_fit(tmp_path: Path) -> None:
    x, _, _ = _data()
    with pytest.raises(SignoffError, match="not a valid ONNX model"):
        save_model(b"not a graph", tmp_path / "a", input_example=x[:3], flavor="onnx")
    with pytest.raises(SignoffError, match="takes 3 features"):
        save_model(_onnx_model(probabilities=False), tmp_path / "b", input_example=x[:3, :2])


def test_onnx_refuses_an_output_that_is_not_numbers(tmp_path: Path) -> None:
    x, _, _ = _data()
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.STRING)],
        "labels",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with pytest.raises(SignoffError, match="must be numbers"):
        save_model(model, tmp_path / "m", input_example=x[:3, :1])


# ---------------------------------------------------------------- python

MODEL_CODE = """
from pathlib import Path

import numpy as np

{marker}


class Linear:
    def __init__(self, weights):
        self.weights = weights

    def predict(self, matrix):
        return matrix @ self.weights


def load(folder: Path) -> Linear:
    return Linear(np.load(folder / "artifacts" / "weights.npy"))
"""


class _Linear:
    """The user's in-memory model: what the code file rebuilds from its artifact."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(matrix @ self.weights)


def _python_sources(tmp_path: Path, marker: Path | None = None) -> tuple[Path, Path]:
    code = tmp_path / "model_code.py"
    touch = f"Path({str(marker)!r}).touch()" if marker else ""
    code.write_text(textwrap.dedent(MODEL_CODE).format(marker=touch))
    weights = tmp_path / "w.npy"
    np.save(weights, np.array([1.5, -0.5, 0.25]))
    return code, weights


def test_python_round_trip_runs_the_code_file(tmp_path: Path) -> None:
    x, _, _ = _data()
    code, weights = _python_sources(tmp_path)
    model = _Linear(np.load(weights))
    folder = tmp_path / "m"
    meta = save_model(
        model,
        folder,
        input_example=_columns(x[:5]),
        flavor="python",
        code=code,
        artifacts={"weights": weights},
    )
    assert meta.flavor == "python"
    assert meta.output == "value"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "artifacts/weights.npy",
        "model.py",
        META_FILE,
    ]
    digest = folder_digest(folder)
    loaded = load_model(folder, expected_digest=digest)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))
    # no bytecode was written into the folder: it still has the digest that was approved
    assert folder_digest(folder) == digest
    load_model(folder, expected_digest=digest)


def test_python_code_runs_only_after_the_digest_check(tmp_path: Path) -> None:
    x, _, _ = _data()
    marker = tmp_path / "imported"
    code, weights = _python_sources(tmp_path, marker)
    folder = tmp_path / "m"
    save_model(
        None,
        folder,
        input_example=x[:3],
        flavor="python",
        code=code,
        artifacts={"weights": weights},
    )
    assert not marker.exists()  # nothing to compare with: the code was not run at save time
    digest = folder_digest(folder)
    with pytest.raises(IntegrityError, match="expected digest"):
        load_model(folder, expected_digest=None)
    (folder / "model.py").write_text((folder / "model.py").read_text() + "\nload = None\n")
    with pytest.raises(IntegrityError, match="digest"):
        load_model(folder, expected_digest=digest)
    assert not marker.exists()


def test_python_save_checks_that_the_code_reproduces_the_model(tmp_path: Path) -> None:
    x, _, _ = _data()
    code, weights = _python_sources(tmp_path)
    with pytest.raises(SignoffError, match="do not reproduce"):
        save_model(
            _Linear(np.zeros(3)),
            tmp_path / "m",
            input_example=x[:5],
            flavor="python",
            code=code,
            artifacts={"weights": weights},
        )


def test_python_flavor_options_are_checked(tmp_path: Path) -> None:
    x, _, _ = _data()
    code, weights = _python_sources(tmp_path)
    with pytest.raises(SignoffError, match="code="):
        save_model(None, tmp_path / "a", input_example=x[:3], flavor="python")
    with pytest.raises(SignoffError, match="artifact name"):
        save_model(
            None,
            tmp_path / "b",
            input_example=x[:3],
            flavor="python",
            code=code,
            artifacts={"../w": weights},
        )
    with pytest.raises(SignoffError, match="output"):
        save_model(
            None, tmp_path / "c", input_example=x[:3], flavor="python", code=code, output="label"
        )


def test_python_code_that_fails_is_reported_as_a_model_error(tmp_path: Path) -> None:
    x, _, _ = _data()
    code = tmp_path / "broken.py"
    code.write_text("import no_such_module_for_signoff_tests\n")
    folder = tmp_path / "m"
    save_model(None, folder, input_example=x[:3], flavor="python", code=code)
    with pytest.raises(SignoffError, match="failed to import: ModuleNotFoundError"):
        load_model(folder, expected_digest=folder_digest(folder))


# ---------------------------------------------------------------- every flavor


def _saved_folder(flavor: str, tmp_path: Path) -> Path:
    x, y, _ = _data()
    folder = tmp_path / flavor
    if flavor == "sklearn":
        save_model(LogisticRegression().fit(x, y), folder, input_example=x[:3])
    elif flavor == "xgboost":
        save_model(xgboost.XGBClassifier(n_estimators=3).fit(x, y), folder, input_example=x[:3])
    elif flavor == "onnx":
        save_model(_onnx_model(probabilities=False), folder, input_example=x[:3])
    else:
        code, weights = _python_sources(tmp_path)
        save_model(
            None,
            folder,
            input_example=x[:3],
            flavor=flavor,
            artifacts={"weights": weights},
            code=code,
        )
    return folder


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_every_flavor_refuses_a_changed_folder(flavor: str, tmp_path: Path) -> None:
    folder = _saved_folder(flavor, tmp_path)
    digest = folder_digest(folder)
    assert read_meta(folder).content_digest
    model_file = next(p for p in folder.iterdir() if p.name.startswith("model."))
    model_file.write_bytes(model_file.read_bytes() + b"\n")
    with pytest.raises(IntegrityError, match="expected"):
        load_model(folder, expected_digest=digest)


def test_unknown_flavors_are_refused(tmp_path: Path) -> None:
    x, y, _ = _data()
    with pytest.raises(SignoffError, match="unknown model flavor 'pmml'"):
        save_model(LogisticRegression().fit(x, y), tmp_path / "a", input_example=x, flavor="pmml")
    assert not (tmp_path / "a").exists()
    folder = _saved_folder("sklearn", tmp_path)
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({**meta, "flavor": "pickle"}))
    with pytest.raises(SignoffError, match="unknown model flavor 'pickle'"):
        load_model(folder, expected_digest=folder_digest(folder))


def test_options_a_flavor_does_not_take_are_refused(tmp_path: Path) -> None:
    x, y, _ = _data()
    with pytest.raises(SignoffError, match="takes no option"):
        save_model(
            LogisticRegression().fit(x, y), tmp_path / "m", input_example=x, code=Path("m.py")
        )


def test_detect_flavor_points_plain_objects_to_the_python_flavor() -> None:
    x, y, _ = _data()
    assert detect_flavor(LogisticRegression().fit(x, y)) == "sklearn"
    assert detect_flavor(xgboost.XGBRegressor()) == "xgboost"
    with pytest.raises(SignoffError, match='flavor="python"'):
        detect_flavor(_Linear(np.ones(3)))
    with pytest.raises(SignoffError, match="not detected"):
        detect_flavor(object())


def test_metadata_without_a_content_digest_still_reads(tmp_path: Path) -> None:
    folder = _saved_folder("sklearn", tmp_path)
    meta = json.loads((folder / META_FILE).read_text())
    del meta["content_digest"]
    (folder / META_FILE).write_text(json.dumps(meta))
    assert read_meta(folder).content_digest is None
    assert ModelMeta.from_json(meta).to_json() == meta
    load_model(folder, expected_digest=folder_digest(folder))
