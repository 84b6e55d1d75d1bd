"""Rollover, canary, rollback and prediction logging on real endpoint processes on loopback.

Every load here is bounded: a few client threads post until told to stop, and stop by
themselves after at most ``_LOAD_LIMIT_SECONDS`` or ``_LOAD_LIMIT_REQUESTS`` each.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_text import Samples
from ruamel.yaml import YAML
from typer.testing import CliRunner

from signoff._version import __version__
from signoff.cli.commands import app as cli_app
from signoff.cli.serving_commands import ExportFormat, build_manifests
from signoff.deployment import Deployer
from signoff.domain.ports import Rollout
from signoff.domain.records import (
    DeploymentKind,
    EndpointRecord,
    ModelVersionRecord,
    RunRecord,
    TaskRunRecord,
    UserRecord,
)
from signoff.domain.specs import FlowSpec, TaskKind, TaskSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.endpoints import EndpointProcess, LocalEndpointRunner
from signoff.engine.engine import new_id
from signoff.errors import ExecutionError, SignoffError
from signoff.registry.flavors import folder_digest, save_model
from signoff.store.sql import SqlStore, open_store

FEATURES = ("x1", "x2", "x3")
ROWS = [
    {"x1": 0.1, "x2": 1.0, "x3": 3.0},
    {"x1": 0.9, "x2": 0.2, "x3": 1.0},
    {"x1": 0.4, "x2": 0.8, "x3": 2.5},
    {"x1": 0.7, "x2": 0.1, "x3": 0.5},
]
CALM = {"rows": [ROWS[0]]}  # every version answers it
ROUGH = {"rows": [ROWS[1]]}  # x1 > 0.5: the "flaky" version fails on it
_LOAD_LIMIT_SECONDS = 15.0
_LOAD_LIMIT_REQUESTS = 4000

FAILS_ON_LARGE_X1 = """
import numpy as np


class _Flaky:
    def predict(self, matrix):
        if np.any(matrix[:, 0] > 0.5):
            raise RuntimeError("x1 too large for this model")
        return np.zeros(len(matrix))


def load(folder):
    return _Flaky()
"""

ALWAYS_FAILS = """
class _Broken:
    def predict(self, matrix):
        raise RuntimeError("this model cannot predict")


def load(folder):
    return _Broken()
"""


# ------------------------------------------------------------------------- fixtures
def _sklearn(folder: Path, c: float) -> Path:
    from sklearn.linear_model import LogisticRegression

    matrix = np.array([[r[f] for f in FEATURES] for r in ROWS])
    model = LogisticRegression(C=c).fit(matrix, [0, 1, 0, 1])
    save_model(model, folder, input_example={f: [r[f] for r in ROWS] for f in FEATURES})
    return folder


def _python(folder: Path, code: str) -> Path:
    source = folder.parent / f"{folder.name}_code.py"
    source.write_text(code)
    example = {f: [r[f] for r in ROWS] for f in FEATURES}
    save_model(None, folder, input_example=example, flavor="python", code=source)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("models")
    return {
        "v1": _sklearn(base / "v1", 1.0),
        "v2": _sklearn(base / "v2", 0.01),
        "v3": _sklearn(base / "v3", 100.0),
        "flaky": _python(base / "flaky", FAILS_ON_LARGE_X1),
        "broken": _python(base / "broken", ALWAYS_FAILS),
    }


class _TrackingRunner(LocalEndpointRunner):
    """Remembers every pid it started so the fixture can always stop them."""

    started: list[int]

    def start(
        self, name: str, model_dir: Path, digest: str, model_version: str, port: int | None
    ) -> EndpointProcess:
        endpoint = super().start(name, model_dir, digest, model_version, port)
        self.started.append(endpoint.pid)
        return endpoint


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[_TrackingRunner]:
    env = _clean_env(SIGNOFF_SECRET_KEY="link-signing-key")  # must not reach the endpoint
    runner = _TrackingRunner(tmp_path / "home", ready_timeout=60.0, base_env=env)
    runner.started = []
    yield runner
    for pid in runner.started:
        runner.stop(pid, timeout=5.0)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    return {**env, **extra}


def _start(runner: LocalEndpointRunner, models: dict[str, Path], label: str = "v1") -> str:
    folder = models[label]
    return runner.start("churn", folder, folder_digest(folder), label, port=None).url


def _rollover(
    runner: LocalEndpointRunner, url: str, models: dict[str, Path], label: str, **kw: Any
) -> Any:
    folder = models[label]
    return runner.rollover("churn", url, Rollout(folder, folder_digest(folder), label, **kw))


@dataclass
class _Answer:
    at: float
    status: int  # -1: no HTTP answer at all (connection refused, reset, timeout)
    version: str | None


@dataclass
class _Load:
    """Client threads posting to /predict until ``stop`` (or their own limits)."""

    url: str
    body: Callable[[int], dict[str, Any]] = lambda _i: CALM
    threads: int = 3
    answers: list[_Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._post, daemon=True) for _ in range(self.threads)
        ]

    def __enter__(self) -> _Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=_LOAD_LIMIT_SECONDS + 5)

    def _post(self) -> None:
        deadline = time.monotonic() + _LOAD_LIMIT_SECONDS
        with httpx.Client(base_url=self.url, trust_env=False, timeout=10.0) as client:
            for i in range(_LOAD_LIMIT_REQUESTS):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = client.post("/predict", json=self.body(i))
                    version = response.json().get("model_version")
                    answer = _Answer(time.monotonic(), response.status_code, version)
                except (httpx.HTTPError, ValueError):
                    answer = _Answer(time.monotonic(), -1, None)
                with self._lock:
                    self.answers.append(answer)

    def failures(self, after: float = 0.0) -> list[_Answer]:
        return [a for a in self.answers if a.status != 200 and a.at >= after]

    def versions(self, after: float = 0.0) -> set[str | None]:
        return {a.version for a in self.answers if a.at >= after}


def _wait_for_answers(load: _Load, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(load.answers) < n and time.monotonic() < deadline:
        time.sleep(0.02)


# ------------------------------------------------------------------------ rollover
def test_rollover_and_rollback_under_load_drop_nothing(
    runner: _TrackingRunner, models: dict[str, Path]
) -> None:
    url = _start(runner, models, "v1")
    with _Load(url) as load:
        _wait_for_answers(load, 50)
        result = _rollover(runner, url, models, "v2")
        switched = time.monotonic()
        _wait_for_answers(load, len(load.answers) + 100)
        back = _rollover(runner, url, models, "v1")  # a rollback is the same switch
        returned = time.monotonic()
        _wait_for_answers(load, len(load.answers) + 100)
    print(f"rollover {result.seconds:.3f}s, rollback {back.seconds:.3f}s, {len(load.answers)} req")

    assert load.failures() == []
    assert (result.model_version, result.previous, result.traffic) == ("v2", "v1", {"v2": 100})
    assert not result.rolled_back
    assert load.versions(after=switched + 0.05) - {"v1"} == {"v2"}
    assert load.versions(after=returned + 0.05) == {"v1"}
    assert httpx.get(f"{url}/health", trust_env=False).json()["model_version"] == "v1"
    state = runner.state("churn", url)
    assert state.traffic == {"v1": 100}
    assert {v.model_version for v in state.versions} == {"v1", "v2"}  # kept for a rollback

    token_file = runner.token_path("churn")
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token not in runner.log_path("churn").read_text()
    pid = runner.started[0]
    assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"SIGNOFF_ENDPOINT_TOKEN={token}".encode() in environ
    assert not any(e.startswith(b"SIGNOFF_SECRET_KEY=") for e in environ)


def test_a_third_version_unloads_the_oldest(
    runner: _TrackingRunner, models: dict[str, Path]
) -> None:
    url = _start(runner, models, "v1")
    _rollover(runner, url, models, "v2")
    _rollover(runner, url, models, "v3")
    state = runner.state("churn", url)
    assert [(v.model_version, v.traffic) for v in state.versions] == [("v2", 0), ("v3", 100)]


def test_versions_that_fail_to_load_or_warm_up_get_no_traffic(
    runner: _TrackingRunner, models: dict[str, Path], tmp_path: Path
) -> None:
    url = _start(runner, models, "v1")
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    with _Load(url) as load:
        _wait_for_answers(load, 30)
        with pytest.raises(ExecutionError, match="digest") as wrong_digest:
            runner.rollover("churn", url, Rollout(models["v2"], "0" * 64, "v2"))
        with pytest.raises(ExecutionError, match="warm-up") as warm_up:
            _rollover(runner, url, models, "broken")
        with pytest.raises(ExecutionError, match="not a model folder"):
            runner.rollover("churn", url, Rollout(not_a_model, folder_digest(not_a_model), "empty"))
        _wait_for_answers(load, len(load.answers) + 30)
    assert "409" in str(wrong_digest.value)
    assert "this model cannot predict" in str(warm_up.value)
    assert load.failures() == []
    assert load.versions() == {"v1"}
    state = runner.state("churn", url)
    assert [(v.model_version, v.traffic) for v in state.versions] == [("v1", 100)]


def test_canary_split_is_observed_then_completed(
    runner: _TrackingRunner, models: dict[str, Path]
) -> None:
    url = _start(runner, models, "v1")
    canary = _rollover(runner, url, models, "v2", traffic=20)
    assert canary.traffic == {"v1": 80, "v2": 20}
    seen: dict[str, int] = {}
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
        for _ in range(1000):
            version = client.post("/predict", json=CALM).json()["model_version"]
            seen[version] = seen.get(version, 0) + 1
    assert 0.10 <= seen["v2"] / 1000 <= 0.30, seen
    state = runner.state("churn", url)
    assert {v.model_version: v.requests for v in state.versions} == seen
    metrics = Samples(httpx.get(f"{url}/metrics", trust_env=False).text)
    labels = {"endpoint": "churn", "version": "v2"}
    assert metrics("signoff_requests_total", **labels, status="200") == seen["v2"]
    assert metrics("signoff_traffic_share", **labels) == 0.2

    promoted = _rollover(runner, url, models, "v2")
    assert (promoted.previous, promoted.traffic) == ("v1", {"v2": 100})
    assert httpx.get(f"{url}/version", trust_env=False).json()["model_version"] == "v2"


def test_error_rate_rule_rolls_a_bad_version_back(
    runner: _TrackingRunner, models: dict[str, Path]
) -> None:
    url = _start(runner, models, "v1")
    with _Load(url, body=lambda i: ROUGH if i % 2 else CALM) as load:
        _wait_for_answers(load, 30)
        result = _rollover(runner, url, models, "flaky", probation_seconds=5.0, max_error_rate=0.1)
        back = time.monotonic()
        _wait_for_answers(load, len(load.answers) + 60)
    assert result.rolled_back
    assert "flaky failed" in (result.reason or "")
    assert "traffic went back to v1" in result.reason
    assert result.errors > 0
    assert {a.status for a in load.failures()} == {500}  # only the bad version's answers
    assert load.failures(after=back) == []
    state = runner.state("churn", url)
    assert [(v.model_version, v.traffic) for v in state.versions] == [("v1", 100)]


def test_admin_api_needs_the_token_and_answers_bad_bodies_with_4xx(
    runner: _TrackingRunner, models: dict[str, Path]
) -> None:
    url = _start(runner, models, "v1")
    token = runner.token_path("churn").read_text().strip()
    good = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
        assert client.get("/admin/state").status_code == 401
        assert (
            client.get("/admin/state", headers={"Authorization": "Bearer nope"}).status_code == 403
        )
        assert client.post("/admin/traffic", json={"v1": 100}).status_code == 401
        assert client.get("/admin/state", headers={"Authorization": token}).status_code == 401

        bad_bodies: list[tuple[str, bytes | None, object]] = [
            ("/admin/load", b"{", None),
            ("/admin/load", None, []),
            ("/admin/load", None, {"model_dir": str(models["v2"])}),
            ("/admin/load", None, {"model_dir": 1, "digest": "x", "model_version": "v2"}),
            ("/admin/load", None, {"model_dir": "relative", "digest": "0" * 64,
                                   "model_version": "v2"}),
            ("/admin/load", None, {"model_dir": str(models["v2"]), "digest": "0" * 64,
                                   "model_version": "v2", "extra": 1}),
            ("/admin/load", None, {"model_dir": str(models["v2"]), "digest": "0" * 64,
                                   "model_version": "v1"}),
            ("/admin/traffic", None, {"v1": 50}),
            ("/admin/traffic", None, {"v1": "100"}),
            ("/admin/traffic", None, {"v1": 100.0}),
            ("/admin/traffic", None, {"v1": 150, "v2": -50}),
            ("/admin/traffic", None, {"nope": 100}),
            ("/admin/traffic", None, [["v1", 100]]),
            ("/admin/traffic", b"\xff", None),
            ("/admin/unload", None, {"model_version": "v1"}),
            ("/admin/unload", None, {"model_version": "nope"}),
            ("/admin/unload", None, {}),
            ("/admin/unload", b"[" * 100_000, None),
        ]  # fmt: skip
        for path, raw, body in bad_bodies:
            content = raw if raw is not None else json.dumps(body).encode()
            response = client.post(
                path, content=content, headers={**good, "content-type": "application/json"}
            )
            assert 400 <= response.status_code < 500, (path, body, response.text)
            assert response.json()["detail"], (path, body)
        response = client.post("/admin/traffic", content=b"{}", headers=good)
        assert response.status_code == 415
        assert client.get("/admin/state", headers=good).json()["traffic"] == {"v1": 100}
        assert client.post("/predict", json=CALM).json()["model_version"] == "v1"


# ------------------------------------------------------------------- prediction log
def test_prediction_log_and_feedback_round_trip(
    tmp_path: Path, database_url: str, models: dict[str, Path]
) -> None:
    store = open_store(database_url)  # migrated, as a deploying process would have done
    env = _clean_env(SIGNOFF_DATABASE_URL=database_url, SIGNOFF_PREDICTION_LOG_SAMPLE="1")
    runner = LocalEndpointRunner(tmp_path / "home", base_env=env)
    endpoint = runner.start("churn", models["v1"], folder_digest(models["v1"]), "v1", port=None)
    try:
        with httpx.Client(base_url=endpoint.url, trust_env=False, timeout=10) as client:
            answer = client.post("/predict", json={"rows": ROWS[:2]}).json()
            ids = answer["prediction_ids"]
            assert len(ids) == 2
            response = client.post("/feedback", json={"prediction_id": ids[1], "label": 1})
            assert response.status_code == 201, response.text
            unknown = client.post("/feedback", json={"prediction_id": "0" * 32, "label": 1})
            assert unknown.status_code == 404
            for bad in ({"prediction_id": ids[0]}, {"prediction_id": "x", "label": 1},
                        {"prediction_id": ids[0], "label": None}, [ids[0], 1],
                        {"prediction_id": ids[0], "label": {"a": 1}}):  # fmt: skip
                assert client.post("/feedback", json=bad).status_code == 422, bad
            bad_json = client.post(
                "/feedback", content=b"{", headers={"content-type": "application/json"}
            )
            assert bad_json.status_code == 400
            metrics = Samples(client.get("/metrics").text)
            assert metrics.has("signoff_predictions_logged_total", endpoint="churn")
            assert metrics("signoff_predictions_dropped_total", endpoint="churn") == 0
        logged = {p.id: p for p in store.list_predictions("churn")}
        assert set(ids) <= set(logged)
        first = logged[ids[0]]
        assert (first.model_version, first.inputs) == ("v1", ROWS[0])
        assert first.output == pytest.approx(answer["predictions"][0])
        assert first.latency_ms > 0
        assert [(f.prediction_id, f.label) for f in store.list_feedback(ids)] == [(ids[1], 1)]

        # what waits in memory when the endpoint stops is written before it exits
        last = httpx.post(f"{endpoint.url}/predict", json=CALM, trust_env=False).json()
        runner.stop(endpoint.pid)
        assert last["prediction_ids"][0] in {p.id for p in store.list_predictions("churn")}
    finally:
        runner.stop(endpoint.pid)
        store.close()


# ---------------------------------------------------------- deployments, CLI, history
def _register(store: SqlStore, models: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    """Model versions churn:v1..v3 and churn:v4 (the flaky one) in the registry."""
    spec = FlowSpec(name="train-churn", tasks=(TaskSpec("train", TaskKind.EXEC, command="true"),))
    store.save_flow(spec, None)
    run = RunRecord(
        id=new_id(), flow_name=spec.name, flow_hash=spec.spec_hash, state=RunState.SUCCEEDED,
        version=0, params={}, started_by="carol", work_dir=str(tmp_path), created_at=1.0,
        updated_at=1.0,
    )  # fmt: skip
    tr = TaskRunRecord(
        id=new_id(), run_id=run.id, task_name="train", index=-1, kind=TaskKind.EXEC, params={},
        state=TaskRunState.SUCCEEDED, version=0, attempt=1, work_dir=str(tmp_path),
        created_at=1.0,
    )  # fmt: skip
    store.create_run(run, [tr])
    ids = {}
    for n, label in enumerate(("v1", "v2", "v3", "flaky"), start=1):
        mv = ModelVersionRecord(
            id=new_id(), name="churn", version=n, flavor="sklearn", path=str(models[label]),
            digest=folder_digest(models[label]), signature=[], metrics={}, params={},
            run_id=run.id, task_run_id=tr.id, created_at=1.0,
        )  # fmt: skip
        store.add_model_version(mv)
        ids[label] = mv.id
    return ids


class _Clock:
    def now(self) -> float:
        return time.time()


def test_deployer_records_every_change_and_moves_the_champion(
    tmp_path: Path, database_url: str, models: dict[str, Path]
) -> None:
    store = open_store(database_url)
    store.configure_audit(b"rollover-test-audit-key-0123456789")
    ids = _register(store, models, tmp_path)
    runner = _TrackingRunner(tmp_path / "home", base_env=_clean_env())
    runner.started = []
    deployer = Deployer(store, _Clock(), runner, new_id)
    mv = {label: store.get_model_version(i) for label, i in ids.items()}
    try:
        first = deployer.deploy_version("churn", mv["v1"], actor="alice")
        url = first["url"]
        with _Load(url) as load:
            _wait_for_answers(load, 30)
            deployer.deploy_version("churn", mv["v2"], actor="alice")
            back = deployer.rollback("churn", actor="bob")
            _wait_for_answers(load, len(load.answers) + 30)
        assert load.failures() == []
        assert back["model_version"] == "churn:v1"
        assert store.aliases("churn")["champion"] == ids["v1"]

        canary = deployer.deploy_version("churn", mv["v3"], actor="alice", traffic=20)
        assert canary["traffic"] == {"churn:v1": 80, "churn:v3": 20}
        assert store.aliases("churn")["champion"] == ids["v1"]  # a canary is not the champion
        promoted = deployer.promote("churn", actor="bob")
        assert promoted["traffic"] == {"churn:v3": 100}
        assert store.aliases("churn")["champion"] == ids["v3"]

        with _Load(url, body=lambda i: ROUGH if i % 2 else CALM) as load:
            _wait_for_answers(load, 30)
            with pytest.raises(SignoffError, match="rolled back automatically"):
                deployer.deploy_version(
                    "churn", mv["flaky"], actor="alice", probation=5.0, max_error_rate=0.1
                )
        assert store.aliases("churn")["champion"] == ids["v3"]
        assert store.get_endpoint("churn") is not None
        assert store.get_endpoint("churn").model_version_id == ids["v3"]  # type: ignore[union-attr]

        history = store.list_deployments("churn")
        assert [(d.kind, d.model_version_id, d.deployed_by) for d in history] == [
            (DeploymentKind.ROLLOVER, ids["v1"], "alice"),
            (DeploymentKind.ROLLOVER, ids["v2"], "alice"),
            (DeploymentKind.ROLLBACK, ids["v1"], "bob"),
            (DeploymentKind.CANARY, ids["v3"], "alice"),
            (DeploymentKind.PROMOTE, ids["v3"], "bob"),
            (DeploymentKind.ROLLOVER, ids["flaky"], "alice"),
            (DeploymentKind.AUTO_ROLLBACK, ids["v3"], "signoff"),
        ]
        assert history[3].traffic == 20
        assert "failed" in (history[-1].reason or "")

        # a rollback after the automatic one returns to what served before v3: v1
        assert deployer.rollback("churn", actor="bob")["model_version"] == "churn:v1"

        # a rollback during a canary aborts it; a canary over its error rule is not promoted
        deployer.deploy_version("churn", mv["v2"], actor="alice", traffic=50)
        aborted = deployer.rollback("churn", actor="bob")
        assert (aborted["model_version"], aborted["traffic"]) == ("churn:v1", {"churn:v1": 100})
        deployer.deploy_version("churn", mv["flaky"], actor="alice", traffic=50, max_error_rate=0.1)
        with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
            answers = [client.post("/predict", json=ROUGH).status_code for _ in range(40)]
        assert 500 in answers
        with pytest.raises(SignoffError, match="not promoted, canary aborted"):
            deployer.promote("churn", actor="bob")
        assert runner.state("churn", url).traffic == {"churn:v1": 100}
        assert store.aliases("churn")["champion"] == ids["v1"]
        kinds = [d.kind for d in store.list_deployments("churn")][-4:]
        assert kinds == [
            DeploymentKind.CANARY,
            DeploymentKind.ROLLBACK,
            DeploymentKind.CANARY,
            DeploymentKind.AUTO_ROLLBACK,
        ]
    finally:
        for pid in runner.started:
            runner.stop(pid, timeout=5.0)
        store.close()


def test_cli_deploy_history_export_and_digest_refusal(
    tmp_path: Path, database_url: str, models: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    store = open_store(database_url)
    ids = _register(store, models, tmp_path)
    env = {"SIGNOFF_HOME": str(home), "SIGNOFF_DATABASE_URL": database_url, "SIGNOFF_USER": "dana"}
    cli = CliRunner()

    def run(*args: str) -> Any:
        result = cli.invoke(cli_app, list(args), env=env, catch_exceptions=True)
        return result

    glass = ("--break-glass", "--reason", "restoring service")  # these versions had no gate
    try:
        unapproved = run("deploy", "churn", "churn:v1")
        assert unapproved.exit_code != 0
        assert "was not approved: no gate reviewed it" in str(unapproved.exception)
        deployed = run("deploy", "churn", "churn:v1", *glass, "--json")
        assert deployed.exit_code == 0, deployed.output
        assert json.loads(deployed.stdout)["model_version"] == "churn:v1"
        assert run("deploy", "churn", "churn:2", "--as", "erin", *glass).exit_code == 0
        rolled = run("rollback", "churn", "--json")
        assert json.loads(rolled.stdout)["model_version"] == "churn:v1"

        history = json.loads(run("endpoints", "history", "churn", "--json").stdout)
        assert [(h["kind"], h["model_version"], h["deployed_by"]) for h in history] == [
            ("rollover", "churn:v1", "dana"),
            ("rollover", "churn:v2", "erin"),
            ("rollback", "churn:v1", "dana"),
        ]
        assert history[2]["previous_model_version"] == "churn:v2"
        assert [h["override"] for h in history] == ["restoring service"] * 2 + [None]

        manifest = tmp_path / "churn.yaml"
        exported = run(
            "endpoints", "export", "churn", "--format", "kubernetes", "-o", str(manifest)
        )
        assert exported.exit_code == 0, exported.output
        docs = list(YAML(typ="safe").load_all(manifest.read_text()))
        assert [d["kind"] for d in docs] == ["Deployment", "Service"]
        annotations = docs[0]["metadata"]["annotations"]
        assert annotations["signoff.dev/model-version"] == "churn:v1"
        assert annotations["signoff.dev/model-digest"] == folder_digest(models["v1"])

        # files changed after registration: refused before anything is loaded
        (models["v3"] / "extra.txt").write_text("tampered")
        try:
            refused = run("deploy", "churn", ids["v3"], *glass)
        finally:
            (models["v3"] / "extra.txt").unlink()
        assert refused.exit_code != 0
        assert "changed on disk" in str(refused.exception)
        assert len(store.list_deployments("churn")) == 3
        deployed_events = [e for e in store.list_audit() if e.event == "deployed"]
        assert [e.data["kind"] for e in deployed_events] == ["rollover", "rollover", "rollback"]

        # once there are accounts, only an admin changes an endpoint
        store.add_user(UserRecord("dana", None, ("approver",), True, 1.0))
        store.add_user(UserRecord("erin", None, ("admin",), True, 1.0))
        not_admin = run("rollback", "churn")
        assert not_admin.exit_code != 0
        assert "admin role" in str(not_admin.exception)
        assert run("rollback", "churn", "--as", "erin").exit_code == 0
    finally:
        ep = store.get_endpoint("churn")
        if ep is not None and ep.pid:
            LocalEndpointRunner(home).stop(ep.pid, timeout=5.0)
        store.close()


def test_kserve_manifest_names_the_version_and_its_digest() -> None:
    ep = EndpointRecord("Churn_EU", "http://127.0.0.1:1", 1, None, "m1", "serving", 1.0)
    model = ModelVersionRecord(
        "m1", "churn", 7, "sklearn", "/models/churn/7", "ab" * 32, [], {}, {}, "r", "t", 1.0
    )
    docs = list(YAML(typ="safe").load_all(build_manifests(ep, model, ExportFormat.KSERVE)))
    assert len(docs) == 1
    service = docs[0]
    assert service["kind"] == "InferenceService"
    assert service["metadata"]["name"] == "signoff-churn-eu"
    assert service["metadata"]["labels"]["signoff.dev/model-version"] == "churn-v7"
    assert service["metadata"]["annotations"]["signoff.dev/model-digest"] == "ab" * 32
    container = service["spec"]["predictor"]["containers"][0]
    assert container["image"] == f"ghcr.io/signoff/signoff:{__version__}"  # pinned, no pip
    assert container["command"] == ["python", "-m", "signoff.serving"]
    assert container["args"][container["args"].index("--digest") + 1] == "ab" * 32
    assert "REPLACE-ME" in container["env"][0]["value"]
