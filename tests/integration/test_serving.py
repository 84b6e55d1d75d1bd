"""The endpoint app over real small models: validation matrix, predictions and observability."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_text import INF, Samples
from starlette.exceptions import StarletteDeprecationWarning

from signoff.registry.flavors import LoadedModel, folder_digest, load_model, save_model
from signoff.serving import create_app
from signoff.serving.app import MAX_BODY_BYTES, MAX_ROWS
from signoff.serving.metrics import MetricsRow, VersionMetrics, metrics_registry, render_metrics

with warnings.catch_warnings():
    # Starlette 1.x wants the `httpx2` fork for its test client; plain httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

FEATURES = ("age", "income", "member")
TRAIN_ROWS = [
    {"age": 25, "income": 30.0, "member": False},
    {"age": 40, "income": 80.5, "member": True},
    {"age": 33, "income": 52.0, "member": True},
    {"age": 58, "income": 20.0, "member": False},
    {"age": 47, "income": 95.0, "member": True},
    {"age": 22, "income": 15.5, "member": False},
]
LABELS = [0, 1, 1, 0, 1, 0]


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {f: [r[f] for r in rows] for f in FEATURES}


def _matrix(rows: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
    return np.array([[float(r[f]) for f in FEATURES] for r in rows])


@pytest.fixture(scope="module")
def sklearn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("models") / "logreg"
    model = LogisticRegression().fit(_matrix(TRAIN_ROWS), LABELS)
    save_model(model, folder, input_example=_columns(TRAIN_ROWS))
    return folder


@pytest.fixture(scope="module")
def xgboost_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xgboost import XGBClassifier

    folder = tmp_path_factory.mktemp("models") / "xgb"
    model = XGBClassifier(n_estimators=5, max_depth=2).fit(_matrix(TRAIN_ROWS), LABELS)
    save_model(model, folder, input_example=_columns(TRAIN_ROWS))
    return folder


@pytest.fixture(scope="module")
def sklearn_model(sklearn_dir: Path) -> LoadedModel:
    return load_model(sklearn_dir, expected_digest=folder_digest(sklearn_dir))


@pytest.fixture
def client(sklearn_dir: Path, sklearn_model: LoadedModel) -> TestClient:
    app = create_app("churn", sklearn_model, "v3", folder_digest(sklearn_dir))
    return TestClient(app)


def _post(client: TestClient, body: object) -> Any:
    return client.post(
        "/predict", content=json.dumps(body), headers={"content-type": "application/json"}
    )


# --- accepted shapes and predictions -----------------------------------------------------


def test_rows_columns_and_bare_list_give_the_models_own_predictions(
    client: TestClient, sklearn_model: LoadedModel
) -> None:
    expected = sklearn_model.predict(_matrix(TRAIN_ROWS))
    for body in (TRAIN_ROWS, {"rows": TRAIN_ROWS}, {"columns": _columns(TRAIN_ROWS)}):
        response = _post(client, body)
        assert response.status_code == 200, response.text
        data = response.json()
        assert data == {"predictions": expected, "model_version": "v3", "endpoint": "churn"}


def test_predictions_equal_the_estimators_predict_proba(
    client: TestClient, sklearn_dir: Path
) -> None:
    import skops.io as sio

    raw = sio.load(
        sklearn_dir / "model.skops",
        trusted=sio.get_untrusted_types(file=sklearn_dir / "model.skops"),
    )
    expected = raw.predict_proba(_matrix(TRAIN_ROWS))[:, 1]
    got = _post(client, {"rows": TRAIN_ROWS}).json()["predictions"]
    assert got == pytest.approx(list(expected), rel=1e-12)


def test_xgboost_model_is_served(xgboost_dir: Path) -> None:
    from xgboost import XGBClassifier

    digest = folder_digest(xgboost_dir)
    model = load_model(xgboost_dir, expected_digest=digest)
    client = TestClient(create_app("xgb", model, "x1", digest))
    response = _post(client, {"columns": _columns(TRAIN_ROWS)})
    assert response.status_code == 200, response.text
    raw = XGBClassifier()
    raw.load_model(str(xgboost_dir / "model.ubj"))
    expected = raw.predict_proba(_matrix(TRAIN_ROWS))[:, 1]
    assert response.json()["predictions"] == pytest.approx(list(expected), rel=1e-6)
    assert client.get("/version").json()["flavor"] == "xgboost"


def test_integer_accepted_for_float_feature_and_integral_float_for_int(
    client: TestClient,
) -> None:
    response = _post(client, [{"age": 30.0, "income": 50, "member": True}])
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


# --- rejected input ----------------------------------------------------------------------

GOOD = {"age": 30, "income": 50.0, "member": True}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"age": 30, "income": 50.0}, "missing field(s) member"),
        ({**GOOD, "zip": 75001}, "unknown field(s) zip"),
        ({**GOOD, "age": "30"}, "age must be a number"),
        ({**GOOD, "income": True}, "income must be a number"),
        ({**GOOD, "member": 1}, "member must be a boolean"),
        ({**GOOD, "age": 30.5}, "age must be an integer"),
        ({**GOOD, "income": None}, "income must be a number"),
        ({**GOOD, "income": [1.0]}, "income must be a number"),
        ({**GOOD, "age": 10**400}, "too large"),
    ],
)
def test_signature_mismatch_is_422_with_reason(
    client: TestClient, row: dict[str, Any], reason: str
) -> None:
    response = _post(client, {"rows": [GOOD, row]})
    assert response.status_code == 422
    assert reason in response.json()["detail"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_422(client: TestClient, literal: str) -> None:
    body = '{"rows": [{"age": 30, "income": LITERAL, "member": true}]}'.replace("LITERAL", literal)
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "finite" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"rows": []},
        [],
        {"columns": {}},
        {"columns": {"age": [], "income": [], "member": []}},
    ],
)
def test_empty_input_is_422(client: TestClient, body: object) -> None:
    response = _post(client, body)
    assert response.status_code == 422
    assert response.json()["detail"] == "no rows to predict"


@pytest.mark.parametrize(
    "body",
    [
        {"rows": GOOD},
        {"rows": [GOOD], "extra": 1},
        {"instances": [GOOD]},
        {"columns": [GOOD]},
        {"columns": {"age": 30, "income": 50.0, "member": True}},
        {"columns": {"age": [30, 31], "income": [50.0], "member": [True, False]}},
        [GOOD, 7],
        "rows",
        42,
        None,
    ],
)
def test_wrong_shape_is_422(client: TestClient, body: object) -> None:
    response = _post(client, body)
    assert response.status_code == 422
    assert response.json()["detail"]


@pytest.mark.parametrize("raw", [b'{"rows": [', b"{'rows': []}", b"", b"\xff\xfe", b"[" * 100_000])
def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("malformed JSON")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/predict", content=json.dumps([GOOD]), headers=headers)
    assert response.status_code == 415


def test_content_type_with_charset_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/predict",
        content=json.dumps([GOOD]),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_body_over_one_mebibyte_is_413(client: TestClient) -> None:
    padding = " " * (MAX_BODY_BYTES + 1 - len(json.dumps([GOOD])))
    body = json.dumps([GOOD]) + padding
    assert len(body) == MAX_BODY_BYTES + 1
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_chunked_body_over_limit_is_413(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_too_many_rows_is_413(client: TestClient) -> None:
    row = {"age": 1, "income": 1, "member": True}
    response = _post(client, [row] * (MAX_ROWS + 1))
    assert response.status_code == 413
    response = _post(client, {"columns": {"age": [1] * (MAX_ROWS + 1)}})
    assert response.status_code == 413


def test_max_rows_is_accepted(client: TestClient) -> None:
    row = {"age": 1, "income": 1, "member": True}
    response = _post(client, {"rows": [row] * MAX_ROWS})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == MAX_ROWS


# --- health, version, metrics ------------------------------------------------------------


def test_health_and_version(client: TestClient, sklearn_dir: Path) -> None:
    assert client.get("/health").json() == {"status": "ready", "model_version": "v3"}
    assert client.get("/version").json() == {
        "endpoint": "churn",
        "model_version": "v3",
        "digest": folder_digest(sklearn_dir),
        "flavor": "sklearn",
        "signature": [
            {"name": "age", "dtype": "int"},
            {"name": "income", "dtype": "float"},
            {"name": "member", "dtype": "bool"},
        ],
    }


def test_metrics_count_requests_by_status(client: TestClient, sklearn_dir: Path) -> None:
    for _ in range(3):
        assert _post(client, [GOOD]).status_code == 200
    assert _post(client, [{"age": 1}]).status_code == 422
    client.post("/predict", content=b"{", headers={"content-type": "application/json"})
    client.get("/health")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = Samples(response.text)
    labels = {"endpoint": "churn", "version": "v3"}
    assert samples("signoff_requests_total", **labels, status="200") == 3
    assert samples("signoff_requests_total", **labels, status="422") == 1
    assert samples("signoff_requests_total", **labels, status="400") == 1
    assert samples("signoff_model_errors_total", **labels) == 0
    assert samples("signoff_request_latency_seconds_count", **labels) == 5
    assert samples("signoff_request_latency_seconds_bucket", **labels, le=INF) == 5
    assert samples("signoff_request_latency_seconds_sum", **labels) > 0
    buckets = [
        samples("signoff_request_latency_seconds_bucket", **labels, le=le)
        for le in (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, INF)
    ]
    assert buckets == sorted(buckets)  # cumulative
    digest = folder_digest(sklearn_dir)
    assert samples("signoff_model_info", **labels, digest=digest) == 1
    assert samples("signoff_traffic_share", **labels) == 1
    assert samples.types["signoff_request_latency_seconds"] == "histogram"
    assert samples.types["signoff_requests"] == "counter"
    assert "# TYPE signoff_request_latency_seconds histogram" in response.text
    assert "# TYPE signoff_requests_total counter" in response.text
    assert "_created" not in response.text  # no series beyond the ones documented
    assert not samples.has("signoff_predictions_logged_total", endpoint="churn")


def test_metrics_labels_are_escaped(sklearn_dir: Path, sklearn_model: LoadedModel) -> None:
    client = TestClient(create_app('we"ird\\name', sklearn_model, "v\n1", "abc"))
    text = client.get("/metrics").text
    assert 'endpoint="we\\"ird\\\\name"' in text  # escaped on the wire ...
    assert 'version="v\\n1"' in text
    samples = Samples(text)  # ... and read back as they were
    assert samples("signoff_model_info", endpoint='we"ird\\name', version="v\n1", digest="abc") == 1


def test_each_app_counts_in_its_own_registry(sklearn_dir: Path, sklearn_model: LoadedModel) -> None:
    digest = folder_digest(sklearn_dir)
    first = TestClient(create_app("churn", sklearn_model, "v1", digest))
    second = TestClient(create_app("churn", sklearn_model, "v1", digest))
    for _ in range(2):
        assert _post(first, [GOOD]).status_code == 200
    assert _post(second, [GOOD]).status_code == 200
    labels = {"endpoint": "churn", "version": "v1", "status": "200"}
    assert Samples(first.get("/metrics").text)("signoff_requests_total", **labels) == 2
    assert Samples(second.get("/metrics").text)("signoff_requests_total", **labels) == 1
    # nothing went to the process-wide default registry
    assert REGISTRY.get_sample_value("signoff_requests_total", labels) is None
    assert not any(m.name.startswith("signoff_") for m in REGISTRY.collect())


def test_metrics_speak_openmetrics_to_a_scraper_that_asks(client: TestClient) -> None:
    assert _post(client, [GOOD]).status_code == 200
    response = client.get(
        "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(response.text)}
    (sample,) = [s for s in families["signoff_requests"].samples if s.name.endswith("_total")]
    assert (sample.labels["status"], sample.value) == ("200", 1)


def test_unloaded_versions_leave_the_metrics() -> None:
    v1, v2 = VersionMetrics(), VersionMetrics()
    v1.observe(200, 0.002)
    v2.observe(500, 0.02)
    rows = [MetricsRow("v1", "d1", 80, v1), MetricsRow("v2", "d2", 20, v2)]
    registry = metrics_registry("churn", lambda: rows)
    body, _ = render_metrics(registry, None)
    samples = Samples(body.decode())
    assert samples("signoff_traffic_share", endpoint="churn", version="v2") == 0.2
    assert samples("signoff_model_errors_total", endpoint="churn", version="v2") == 1
    assert (v2.requests, v2.errors, v1.requests, v1.errors) == (1, 1, 1, 0)
    rows.pop()  # v2 unloaded
    body, _ = render_metrics(registry, None)
    versions = {s["version"] for s in Samples(body.decode()).label_sets("signoff_model_info")}
    assert versions == {"v1"}
    assert "v2" not in body.decode()


# --- the process entry point -------------------------------------------------------------


def test_wrong_digest_exits_3_with_one_line_reason(sklearn_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "signoff.serving", "--name", "churn", "--model-dir",
         str(sklearn_dir), "--digest", "0" * 64, "--model-version", "v3", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "digest" in lines[0]


def test_folder_that_is_not_a_model_exits_4(tmp_path: Path) -> None:
    empty = hashlib.sha256().hexdigest()  # the digest of a folder with no files
    result = subprocess.run(
        [sys.executable, "-m", "signoff.serving", "--name", "churn", "--model-dir",
         str(tmp_path), "--digest", empty, "--model-version", "v3", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "not a model folder" in lines[0]
