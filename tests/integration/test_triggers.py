"""Each kind of trigger on real stores: drift, quality, error rate (a real endpoint process),
a webhook over real HTTP with a token, and a data path whose contents change.

Rules fire once per firing: the run they start carries the rule's evidence in its facts, and
a rule does not fire again while that run is going or within its window.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.ports import FiringState
from signoff.domain.records import (
    EndpointRecord,
    FeedbackRecord,
    ModelVersionRecord,
    PredictionRecord,
    RunRecord,
    TaskRunRecord,
    UserRecord,
)
from signoff.domain.specs import FlowSpec, TaskKind, TaskSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.endpoints.local import LocalEndpointRunner
from signoff.registry.flavors import folder_digest, save_model
from signoff.scheduling import Scheduler
from signoff.server import create_app
from signoff.server.tokens import issue_token

START = datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp()
DAY = 86400.0
FEATURES = ("tenure", "charges")


class FakeClock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url))
    a.endpoints = LocalEndpointRunner(a.settings.resolved_home, base_env=env)
    a.engine.endpoints = a.endpoints
    try:
        yield a
    finally:
        for ep in a.store.list_endpoints():
            if ep.pid:
                a.endpoints.stop(ep.pid, timeout=5)
        a.close()


def write_flow(folder: Path, triggers: str, name: str = "retrain") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flow.yaml"
    path.write_text(
        f"flow: {name}\ntriggers:\n{triggers}tasks:\n  - title: work\n    command: 'true'\n"
    )
    return path


def register_model(app: App, folder: Path, name: str = "churn") -> ModelVersionRecord:
    """A model version in the registry, made by a finished run of a training flow."""
    spec = FlowSpec(name=f"train-{name}", tasks=(TaskSpec("train", TaskKind.EXEC, "true"),))
    app.store.save_flow(spec, None)
    run_id, tr_id = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    app.store.create_run(
        RunRecord(run_id, spec.name, spec.spec_hash, RunState.SUCCEEDED, 0, {}, "carol",
                  str(folder), 1.0, 1.0),
        [TaskRunRecord(tr_id, run_id, "train", -1, TaskKind.EXEC, {}, TaskRunState.SUCCEEDED,
                       0, 1, str(folder), 1.0)],
    )  # fmt: skip
    model = ModelVersionRecord(
        id=uuid.uuid4().hex[:12], name=name, version=1, flavor="sklearn", path=str(folder),
        digest="0" * 64, signature=[], metrics={}, params={}, run_id=run_id, task_run_id=tr_id,
        created_at=1.0,
    )  # fmt: skip
    return app.store.add_model_version(model)


def serve(
    app: App, model: ModelVersionRecord, url: str = "http://127.0.0.1:9", pid: int | None = None
) -> None:
    port = int(url.rsplit(":", 1)[1])
    app.store.save_endpoint(
        EndpointRecord(model.name, url, port, pid, model.id, "serving", time.time())
    )


def training_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "churn-v1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(24, 6, 2000), rng.normal(70, 15, 2000)])
    np.savez(folder / "training_sample.npz", X=x, feature_names=np.array(FEATURES))
    return folder


def log_predictions(
    app: App, model: ModelVersionRecord, at: float, n: int, *, shift: float = 0.0, seed: int = 1
) -> list[str]:
    rng = np.random.default_rng(seed)
    records = [
        PredictionRecord(
            id=uuid.uuid4().hex,
            endpoint=model.name,
            model_version=model.label,
            at=at - i,
            inputs={
                "tenure": float(rng.normal(24 + shift, 6)),
                "charges": float(rng.normal(70, 15)),
            },
            output=float(rng.random()),
            latency_ms=1.0,
        )
        for i in range(n)
    ]
    app.store.add_predictions(records)
    return [r.id for r in records]


# ------------------------------------------------------------------------- drift
@pytest.mark.parametrize(("metric", "threshold"), [("psi", 0.2), ("ks", 0.15)])
def test_drift_rule_fires_once_with_its_evidence(
    app: App, tmp_path: Path, metric: str, threshold: float
) -> None:
    model = register_model(app, training_folder(tmp_path))
    serve(app, model)
    clock = FakeClock()
    sched = Scheduler(app.store, app.engine, clock)
    rule = f"  - {{on: drift, endpoint: churn, metric: {metric}, threshold: {threshold}, "
    rule += "min_events: 200, window: 7d}\n"
    sched.add(write_flow(tmp_path / "flow", rule))

    log_predictions(app, model, START, 150)
    [first] = sched.evaluate_triggers()
    assert (first.holds, first.note) == (None, "150 of 200 events so far")

    log_predictions(app, model, START - 200, 250, seed=2)
    clock.t += 600
    [calm] = sched.evaluate_triggers()
    assert calm.holds is False
    assert calm.firing is None

    log_predictions(app, model, clock.t, 800, shift=9.0, seed=3)  # customers stay longer now
    clock.t += 600
    [drifted] = sched.evaluate_triggers()
    assert drifted.holds is True
    assert drifted.evidence["drifted"] == ["tenure"]
    assert drifted.firing == f"trigger:retrain#{drifted.trigger_id}#1"
    run = app.store.get_run(drifted.run_id or "")
    facts = run.facts["trigger"]
    assert facts["kind"] == "drift"
    assert facts["evidence"]["model_version"] == "churn:v1"
    assert facts["evidence"]["events"] == 1200
    tenure = next(f for f in facts["evidence"]["features"] if f["name"] == "tenure")
    assert tenure["over"] is True
    assert tenure["value"] > threshold
    assert tenure["current_mean"] > tenure["reference_mean"] + 3

    clock.t += 600  # still drifting, but the run it started is going: no second firing
    [again] = sched.evaluate_triggers()
    assert again.holds is True
    assert again.firing is None
    assert f"run {run.id} it started is queued" in again.note
    app.engine.cancel(run.id, actor="test")
    clock.t += 600
    [later] = sched.evaluate_triggers()
    assert later.firing is None
    assert "within its window" in later.note

    clock.t += 8 * DAY
    log_predictions(app, model, clock.t, 300, shift=9.0, seed=4)
    [next_week] = sched.evaluate_triggers()
    assert next_week.firing == f"trigger:retrain#{drifted.trigger_id}#2"
    keys = [f.key for f in app.store.list_firings(flow="retrain")]
    assert len(keys) == len(set(keys)) == 2


def test_drift_without_a_training_sample_or_endpoint_is_not_judged(
    app: App, tmp_path: Path
) -> None:
    clock = FakeClock()
    sched = Scheduler(app.store, app.engine, clock)
    sched.add(write_flow(tmp_path / "flow", "  - {on: drift, endpoint: churn}\n"))
    [none] = sched.evaluate_triggers()
    assert (none.holds, none.note) == (None, "no endpoint 'churn' yet")
    bare = tmp_path / "bare"
    bare.mkdir()
    serve(app, register_model(app, bare))
    [no_sample] = sched.evaluate_triggers(force=True)
    assert no_sample.holds is None
    assert "has no training sample" in no_sample.note


# ------------------------------------------------------------------------ quality
def test_quality_rule_fires_when_accuracy_from_feedback_falls(app: App, tmp_path: Path) -> None:
    model = register_model(app, training_folder(tmp_path))
    serve(app, model)
    clock = FakeClock()
    sched = Scheduler(app.store, app.engine, clock)
    rule = "  - {on: quality, endpoint: churn, metric: accuracy, below: 0.7, min_events: 50, "
    sched.add(write_flow(tmp_path / "flow", rule + "window: 2d}\n"))

    def label(ids: list[str], correct: float) -> None:
        for i, pid in enumerate(ids):
            logged = app.store.predictions_between("churn", since=0, until=clock.t + 1)
            out = next(p for p in logged if p.id == pid).output
            truth = int(out >= 0.5) if i < correct * len(ids) else 1 - int(out >= 0.5)
            app.store.add_feedback(FeedbackRecord(pid, truth, clock.t))

    good = log_predictions(app, model, START, 60)
    label(good[:40], 0.9)
    [few] = sched.evaluate_triggers()
    assert (few.holds, few.note) == (None, "40 of 50 labelled predictions so far")
    label(good[40:], 0.9)
    clock.t += 600
    [fine] = sched.evaluate_triggers()
    assert fine.holds is False
    assert fine.evidence["value"] == pytest.approx(0.9, abs=0.05)

    bad = log_predictions(app, model, clock.t, 100, seed=5)
    label(bad, 0.3)
    clock.t += 600
    [fired] = sched.evaluate_triggers()
    assert fired.holds is True
    assert fired.evidence["value"] < 0.7
    assert fired.evidence["events"] == 160
    run = app.store.get_run(fired.run_id or "")
    assert run.facts["trigger"]["evidence"]["metric"] == "accuracy"
    assert run.started_by == "signoff:scheduler"


# --------------------------------------------------------------------- error rate
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


def test_error_rate_rule_reads_a_real_endpoint(app: App, tmp_path: Path) -> None:
    source = tmp_path / "flaky_code.py"
    source.write_text(FAILS_ON_LARGE_X1)
    folder = tmp_path / "models" / "flaky"
    save_model(None, folder, input_example={"x1": [0.1, 0.9]}, flavor="python", code=source)
    model = register_model(app, folder, name="flaky")
    endpoint = app.endpoints.start("flaky", folder, folder_digest(folder), model.label, None)
    serve(app, model, endpoint.url, endpoint.pid)
    clock = FakeClock(time.time())
    sched = Scheduler(app.store, app.engine, clock, endpoints=app.endpoints)
    rule = "  - {on: error_rate, endpoint: flaky, above: 0.2, min_events: 20, window: 1h}\n"
    sched.add(write_flow(tmp_path / "flow", rule))
    with httpx.Client(base_url=endpoint.url, trust_env=False, timeout=10) as client:
        for i in range(10):
            assert (
                client.post("/predict", json={"rows": [{"x1": 0.1 + i / 100}]}).status_code == 200
            )
        [few] = sched.evaluate_triggers()
        assert few.holds is None
        assert few.note.endswith("of 20 requests so far")
        for i in range(30):
            client.post("/predict", json={"rows": [{"x1": 0.9 if i % 2 else 0.2}]})
    clock.t += 600
    [fired] = sched.evaluate_triggers()
    assert fired.holds is True
    assert fired.evidence["errors"] == 15
    assert fired.evidence["events"] == 30  # counted from the first look (10 requests before)
    assert fired.evidence["error_rate"] == 0.5
    assert app.store.get_run(fired.run_id or "").facts["trigger"]["kind"] == "error_rate"


# ------------------------------------------------------------------------ webhook
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(app: App) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_webhook_over_http_with_a_token(app: App, tmp_path: Path, served: str) -> None:
    sched = Scheduler(app.store, app.engine, FakeClock())
    sched.add(write_flow(tmp_path / "hooked", "  - {on: webhook}\n", name="hooked"))
    sched.add(write_flow(tmp_path / "quiet", "  - {on: data, path: in/}\n", name="quiet"))
    app.store.add_user(UserRecord("ci", None, ("editor",), True, 0.0))
    token = issue_token(app.store, "ci", scopes=("run",), now=time.time(), ttl_seconds=None)
    reader = issue_token(app.store, "ci", scopes=("read",), now=time.time(), ttl_seconds=None)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=served, trust_env=False, timeout=30) as client:
        assert client.post("/api/v1/flows/hooked/trigger").status_code == 401
        bad = client.post("/api/v1/flows/hooked/trigger", headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401
        read_only = {"Authorization": f"Bearer {reader}"}
        assert client.post("/api/v1/flows/hooked/trigger", headers=read_only).status_code == 403
        missing = client.post("/api/v1/flows/nowhere/trigger", headers=auth)
        assert missing.status_code == 404
        assert "no schedule for flow 'nowhere'" in missing.json()["detail"]
        refused = client.post("/api/v1/flows/quiet/trigger", headers=auth)
        assert refused.status_code == 403
        assert "does not accept webhook calls" in refused.json()["detail"]

        started = client.post("/api/v1/flows/hooked/trigger", headers=auth)
        assert started.status_code == 201, started.text
        body = started.json()
        assert body["state"] == "started"
        run = app.store.get_run(body["run_id"])
        assert run.flow_name == "hooked"
        assert run.started_by == "ci"
        assert run.facts["trigger"]["kind"] == "webhook"

        keyed = {**auth, "Idempotency-Key": "build-481"}
        once = client.post("/api/v1/flows/hooked/trigger", headers=keyed)
        twice = client.post("/api/v1/flows/hooked/trigger", headers=keyed)
        assert (once.status_code, twice.status_code) == (201, 200)
        assert once.json()["run_id"] == twice.json()["run_id"] != body["run_id"]
        assert twice.json()["repeated"] is True
    assert len([r for r in app.store.list_runs() if r.flow_name == "hooked"]) == 2


# --------------------------------------------------------------------------- data
def test_data_trigger_fires_when_the_folder_changes(app: App, tmp_path: Path) -> None:
    clock = FakeClock()
    sched = Scheduler(app.store, app.engine, clock)
    flow = write_flow(tmp_path / "flow", "  - {on: data, path: incoming/, every: 10m}\n")
    incoming = flow.parent / "incoming"
    incoming.mkdir()
    (incoming / "week-01.csv").write_text("a,b\n1,2\n")
    sched.add(flow)

    [first] = sched.evaluate_triggers()
    assert (first.holds, first.note) == (False, "first look: contents recorded")
    clock.t += 60
    assert sched.evaluate_triggers() == []  # judged every 10 minutes
    clock.t += 600
    [same] = sched.evaluate_triggers()
    assert (same.holds, same.note) == (False, "unchanged")

    (incoming / "week-02.csv").write_text("a,b\n3,4\n")
    clock.t += 600
    [changed] = sched.evaluate_triggers()
    assert changed.holds is True
    assert changed.evidence["changes"]["added"] == ["week-02.csv"]
    run = app.store.get_run(changed.run_id or "")
    assert run.facts["trigger"]["evidence"]["files"] == 2

    (incoming / "week-03.csv").write_text("a,b\n5,6\n")  # arrives while the run is going
    clock.t += 600
    [waiting] = sched.evaluate_triggers()
    assert waiting.holds is True
    assert waiting.firing is None
    app.engine.drive(run.id)
    clock.t += 600
    [after] = sched.evaluate_triggers()
    assert after.evidence["changes"]["added"] == ["week-03.csv"]
    assert after.firing is not None
    clock.t += 600
    [quiet] = sched.evaluate_triggers()
    assert quiet.note == "unchanged"
    fired = app.store.list_firings(flow="retrain")
    assert [f.state for f in fired] == [FiringState.STARTED, FiringState.STARTED]


def test_paused_flows_neither_fire_nor_judge(app: App, tmp_path: Path) -> None:
    clock = FakeClock()
    sched = Scheduler(app.store, app.engine, clock)
    sched.add(write_flow(tmp_path / "flow", "  - {on: data, path: incoming/}\n"))
    sched.pause("retrain")
    assert sched.evaluate_triggers() == []
    record = sched.resume("retrain")
    assert not record.paused
    assert len(sched.evaluate_triggers()) == 1
