"""The scikit-learn estimators the sklearn flavor supports: the allow-list covers them all.

``SUPPORTED`` is the list the allow-list in ``signoff.registry.flavors._sklearn_trusted`` was
derived from. Each estimator is fitted on tiny data and saved with skops; the tests check
that everything the archive names is allow-listed (so a new scikit-learn or skops that
changes what a model holds fails here, not at deploy), that every allow-listed entry is
still needed, and that each model saves, loads and predicts exactly what it did before.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

import skops.io as sio
from sklearn import (
    compose,
    decomposition,
    ensemble,
    impute,
    linear_model,
    naive_bayes,
    neighbors,
    pipeline,
    preprocessing,
    svm,
    tree,
)

from signoff.registry.flavors import folder_digest, load_model, save_model
from signoff.registry.flavors._sklearn import named_types, refused_types
from signoff.registry.flavors._sklearn_trusted import (
    SKOPS_PROTOCOLS,
    TRUSTED_NODES,
    TRUSTED_TYPES,
)

FEATURES = ("age", "visits", "plan")  # "plan" holds small integers: a categorical column


@dataclass(frozen=True)
class Case:
    """One supported estimator: how to build it and what it is fitted on."""

    build: Callable[[], Any]
    target: str = "binary"  # binary | multiclass | value | count
    features: str = "float64"  # float64 | float32 | int64 | nonnegative
    labels: str = "int"  # int | bool | str (classifiers only)


def _ct_scaled_onehot() -> Any:
    columns = compose.ColumnTransformer(
        [
            ("num", preprocessing.MinMaxScaler(), [0, 1]),
            ("cat", preprocessing.OneHotEncoder(handle_unknown="ignore"), [2]),
        ]
    )
    return pipeline.Pipeline([("columns", columns), ("model", linear_model.LogisticRegression())])


def _ct_ordinal_passthrough() -> Any:
    columns = compose.ColumnTransformer(
        [("cat", preprocessing.OrdinalEncoder(), [2])], remainder="passthrough"
    )
    return pipeline.Pipeline(
        [("columns", columns), ("model", ensemble.HistGradientBoostingRegressor(max_iter=5))]
    )


SUPPORTED: dict[str, Case] = {
    # linear models
    "LinearRegression": Case(linear_model.LinearRegression, "value"),
    "Ridge": Case(linear_model.Ridge, "value"),
    "Ridge-float32": Case(linear_model.Ridge, "value", "float32"),
    "RidgeClassifier": Case(linear_model.RidgeClassifier),
    "Lasso": Case(lambda: linear_model.Lasso(alpha=0.05), "value"),
    "ElasticNet": Case(lambda: linear_model.ElasticNet(alpha=0.05), "value"),
    "LogisticRegression": Case(linear_model.LogisticRegression),
    "LogisticRegression-multiclass": Case(linear_model.LogisticRegression, "multiclass"),
    "LogisticRegression-str-labels": Case(linear_model.LogisticRegression, labels="str"),
    "LogisticRegression-bool-labels": Case(linear_model.LogisticRegression, labels="bool"),
    "LogisticRegression-float32": Case(linear_model.LogisticRegression, features="float32"),
    "LogisticRegression-int64": Case(linear_model.LogisticRegression, features="int64"),
    "SGDClassifier-hinge": Case(lambda: linear_model.SGDClassifier(random_state=0)),
    "SGDClassifier-log": Case(lambda: linear_model.SGDClassifier(loss="log_loss", random_state=0)),
    "SGDRegressor": Case(lambda: linear_model.SGDRegressor(random_state=0), "value"),
    "PoissonRegressor": Case(linear_model.PoissonRegressor, "count"),
    # trees and forests
    "DecisionTreeClassifier": Case(lambda: tree.DecisionTreeClassifier(max_depth=3)),
    "DecisionTreeRegressor": Case(lambda: tree.DecisionTreeRegressor(max_depth=3), "value"),
    "RandomForestClassifier": Case(
        lambda: ensemble.RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0)
    ),
    "RandomForestClassifier-float32": Case(
        lambda: ensemble.RandomForestClassifier(n_estimators=4, random_state=0),
        features="float32",
    ),
    "RandomForestRegressor": Case(
        lambda: ensemble.RandomForestRegressor(n_estimators=4, random_state=0), "value"
    ),
    "ExtraTreesClassifier": Case(
        lambda: ensemble.ExtraTreesClassifier(n_estimators=4, random_state=0)
    ),
    "ExtraTreesRegressor": Case(
        lambda: ensemble.ExtraTreesRegressor(n_estimators=4, random_state=0), "value"
    ),
    # gradient boosting
    "GradientBoostingClassifier": Case(
        lambda: ensemble.GradientBoostingClassifier(n_estimators=5, random_state=0)
    ),
    "GradientBoostingClassifier-multiclass": Case(
        lambda: ensemble.GradientBoostingClassifier(n_estimators=5, random_state=0),
        "multiclass",
    ),
    "GradientBoostingRegressor": Case(
        lambda: ensemble.GradientBoostingRegressor(n_estimators=5, random_state=0), "value"
    ),
    "HistGradientBoostingClassifier": Case(
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=5)
    ),
    "HistGradientBoostingClassifier-multiclass": Case(
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=5), "multiclass"
    ),
    "HistGradientBoostingClassifier-categorical": Case(
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=5, categorical_features=[2])
    ),
    "HistGradientBoostingClassifier-early-stopping": Case(
        lambda: ensemble.HistGradientBoostingClassifier(
            max_iter=5, early_stopping=True, validation_fraction=0.25, n_iter_no_change=2
        )
    ),
    "HistGradientBoostingRegressor": Case(
        lambda: ensemble.HistGradientBoostingRegressor(max_iter=5), "value"
    ),
    "HistGradientBoostingRegressor-int64": Case(
        lambda: ensemble.HistGradientBoostingRegressor(max_iter=5), "value", "int64"
    ),
    # k-neighbours
    "KNeighborsClassifier": Case(lambda: neighbors.KNeighborsClassifier(3)),
    "KNeighborsClassifier-ball-tree": Case(
        lambda: neighbors.KNeighborsClassifier(3, algorithm="ball_tree")
    ),
    "KNeighborsClassifier-brute": Case(
        lambda: neighbors.KNeighborsClassifier(3, algorithm="brute")
    ),
    "KNeighborsRegressor": Case(lambda: neighbors.KNeighborsRegressor(3), "value"),
    "KNeighborsRegressor-manhattan": Case(
        lambda: neighbors.KNeighborsRegressor(3, metric="manhattan"), "value"
    ),
    # naive Bayes
    "GaussianNB": Case(naive_bayes.GaussianNB),
    "GaussianNB-float32": Case(naive_bayes.GaussianNB, features="float32"),
    "BernoulliNB": Case(naive_bayes.BernoulliNB),
    "MultinomialNB": Case(naive_bayes.MultinomialNB, features="nonnegative"),
    "ComplementNB": Case(naive_bayes.ComplementNB, features="nonnegative"),
    # support vector machines
    "SVC": Case(svm.SVC),
    "SVR": Case(svm.SVR, "value"),
    "LinearSVC": Case(svm.LinearSVC),
    "LinearSVR": Case(lambda: svm.LinearSVR(max_iter=10_000), "value"),
    # pipelines and column transformers with the common preprocessors
    "Pipeline-imputer-scaler": Case(
        lambda: pipeline.make_pipeline(
            impute.SimpleImputer(),
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(),
        )
    ),
    "Pipeline-median-imputer-indicator": Case(
        lambda: pipeline.make_pipeline(
            impute.SimpleImputer(strategy="median", add_indicator=True), linear_model.Ridge()
        ),
        "value",
    ),
    "Pipeline-scalers-polynomial-pca": Case(
        lambda: pipeline.make_pipeline(
            preprocessing.MaxAbsScaler(),
            preprocessing.RobustScaler(),
            preprocessing.Normalizer(),
            preprocessing.PolynomialFeatures(2),
            decomposition.PCA(3),
            linear_model.LogisticRegression(),
        )
    ),
    "Pipeline-binned": Case(
        lambda: pipeline.make_pipeline(
            preprocessing.KBinsDiscretizer(n_bins=3, quantile_method="averaged_inverted_cdf"),
            linear_model.LogisticRegression(),
        )
    ),
    "ColumnTransformer-scaled-onehot": Case(_ct_scaled_onehot),
    "ColumnTransformer-ordinal-passthrough": Case(_ct_ordinal_passthrough, "value"),
}


def _data(case: Case) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 80
    x = rng.normal(size=(n, 3))
    x[:, 2] = rng.integers(0, 3, size=n)
    signal = x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2]
    y: np.ndarray
    if case.target == "value":
        y = 2.0 * signal + rng.normal(scale=0.1, size=n)
    elif case.target == "count":
        y = rng.poisson(np.exp(0.3 * signal)).astype(float)
    elif case.target == "multiclass":
        y = np.digitize(signal, [-0.5, 0.5])
    else:
        y = (signal > 0).astype(int)
        if case.labels == "bool":
            y = y.astype(bool)
        elif case.labels == "str":
            y = np.where(y == 1, "churned", "stayed")
    if case.features == "float32":
        x = x.astype(np.float32)
    elif case.features == "int64":
        x = np.rint(x * 3).astype(np.int64)
    elif case.features == "nonnegative":
        x = np.abs(x)
    return x, y


def fitted(case: Case) -> tuple[Any, np.ndarray]:
    """The case's estimator fitted on its tiny data, and that data."""
    x, y = _data(case)
    with warnings.catch_warnings():
        # tiny data: convergence and n_jobs notes are expected, nothing else is
        warnings.simplefilter("ignore", category=UserWarning)
        model = case.build().fit(x, y)
    return model, x


@pytest.fixture(scope="module")
def archives() -> dict[str, bytes]:
    """Every supported estimator, fitted and saved with skops (once for the module)."""
    return {name: sio.dumps(fitted(case)[0]) for name, case in SUPPORTED.items()}


def _schema(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema: dict[str, Any] = json.loads(archive.read("schema.json"))
    return schema


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_type_a_supported_estimator_names_is_allow_listed(
    name: str, archives: dict[str, bytes]
) -> None:
    data = archives[name]
    untrusted = set(sio.get_untrusted_types(data=data))
    assert untrusted <= TRUSTED_TYPES, sorted(untrusted - TRUSTED_TYPES)
    named = named_types(data)
    missing = sorted(pair for pair in named if pair[1] not in TRUSTED_NODES.get(pair[0], ()))
    assert not missing, missing
    assert _schema(data)["protocol"] in SKOPS_PROTOCOLS
    assert refused_types(data) == ([], sorted(untrusted))


def test_every_allow_listed_entry_is_needed_by_a_supported_estimator(
    archives: dict[str, bytes],
) -> None:
    named: set[tuple[str, str]] = set()
    for data in archives.values():
        named |= named_types(data)
    listed = {(kind, name) for kind, names in TRUSTED_NODES.items() for name in names}
    assert sorted(listed - named) == []
    assert {name for _, name in named} >= TRUSTED_TYPES


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_supported_estimator_saves_loads_and_predicts_the_same(
    name: str, tmp_path: Path
) -> None:
    model, x = fitted(SUPPORTED[name])
    example = {feature: x[:5, i].tolist() for i, feature in enumerate(FEATURES)}
    meta = save_model(model, tmp_path / "m", input_example=example)
    loaded = load_model(tmp_path / "m", expected_digest=folder_digest(tmp_path / "m"))
    matrix = np.asarray(x, dtype=np.float64)  # what the endpoint passes: a float matrix
    if meta.output == "score":
        expected = model.predict_proba(matrix)[:, -1]
    else:
        expected = model.predict(matrix)
    np.testing.assert_array_equal(np.asarray(loaded.predict(matrix)), np.asarray(expected))
