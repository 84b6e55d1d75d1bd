"""The churn loop end to end, with a fake clock for the scheduler.

Week 1: the Monday schedule starts the flow; it trains, alice approves, the ``churn``
endpoint (a real process, logging every prediction) serves it. Customers of later weeks are
posted to the endpoint over HTTP and their churn labels to ``/feedback``. Week 2 still looks
like the training data; by week 3 the inputs have drifted: the drift rule fires, a run starts
with the rule's evidence in its facts and in the review report, the gate asks, alice
approves, and the endpoint rolls over to the new version.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import httpx
import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.ports import FiringState
from signoff.domain.states import RunState
from signoff.endpoints.local import LocalEndpointRunner
from signoff.engine.engine import new_id
from signoff.gates.decide import decide
from signoff.scheduling import Scheduler, schedule_view

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"
WEEK = 7 * 86400.0


class FakeClock:
    """The scheduler's time; it moves only forward, when the test moves it."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def catch_up(self) -> float:
        """Move to the real time if that is later (events are stamped with real time)."""
        self.t = max(self.t, time.time()) + 1.0
        return self.t


def _generator(folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("churn_generate", folder / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[tuple[App, Path]]:
    flow_dir = tmp_path / "churn"
    shutil.copytree(EXAMPLE, flow_dir, ignore=shutil.ignore_patterns("data", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env.update(SIGNOFF_DATABASE_URL=database_url, SIGNOFF_PREDICTION_LOG_SAMPLE="1")
    app = build_app(Settings(home=tmp_path / "home", database_url=database_url))
    app.endpoints = LocalEndpointRunner(app.settings.resolved_home, base_env=env)
    app.engine.endpoints = app.endpoints
    try:
        yield app, flow_dir
    finally:
        for ep in app.store.list_endpoints():
            if ep.pid:
                app.endpoints.stop(ep.pid, timeout=5)
        app.close()


def _approve(app: App, run_id: str) -> RunState:
    assert app.store.get_run(run_id).state is RunState.WAITING_FOR_APPROVAL
    decide(
        app.store,
        app.engine.clock,
        run_id,
        actor="alice",
        approve=True,
        comment="numbers look right",
        channel="cli",
        new_id=new_id,
    )
    return app.engine.drive(run_id).state


def _post_week(app: App, gen: ModuleType, week: int, rows: int = 300) -> int:
    """Customers of ``week`` ask the endpoint; their labels follow to /feedback."""
    x, churned = gen.week_rows(week, rows, seed=1)
    endpoint = app.store.get_endpoint("churn")
    assert endpoint is not None
    logged = 0
    with httpx.Client(base_url=endpoint.url, trust_env=False, timeout=30) as client:
        for start in range(0, rows, 100):
            batch = [dict(zip(gen.FEATURES, r, strict=True)) for r in x[start : start + 100]]
            answer = client.post("/predict", json={"rows": batch})
            assert answer.status_code == 200, answer.text
            ids = answer.json()["prediction_ids"]
            for pid, label in zip(ids, churned[start : start + 100].tolist(), strict=True):
                sent = client.post("/feedback", json={"prediction_id": pid, "label": label})
                assert sent.status_code == 201, sent.text
            logged += len(ids)
    return logged


def test_drift_retrains_and_rolls_the_endpoint_over(world: tuple[App, Path]) -> None:
    app, flow_dir = world
    gen = _generator(flow_dir)
    gen.write_week(1, flow_dir / "data")
    clock = FakeClock(time.time() - WEEK)  # a week ago: the next Monday has come by now
    scheduler = Scheduler(app.store, app.engine, clock, endpoints=app.endpoints)
    record = scheduler.add(flow_dir / "flow.yaml")
    monday = schedule_view(record, now=clock.now(), n=1)["next"][0]
    monday_at = datetime.strptime(monday, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert monday_at.astimezone(ZoneInfo("Europe/Paris")).hour == 3

    # ---- week 1: the Monday schedule trains and deploys churn:v1
    clock.t = monday_at.timestamp() + 30
    [(key, first)] = scheduler.tick().started
    assert key == f"schedule:churn-weekly@{monday}"
    assert app.engine.drive(first).state is RunState.WAITING_FOR_APPROVAL
    assert _approve(app, first) is RunState.SUCCEEDED
    endpoint = app.store.get_endpoint("churn")
    assert endpoint is not None
    served = app.store.get_model_version(endpoint.model_version_id or "")
    assert served.run_id == first
    v1 = served.label

    # ---- week 2: customers drift a little; nothing fires
    assert _post_week(app, gen, 2) == 300
    _wait_logged(app, v1, 300)
    clock.catch_up()
    evaluations = {e.kind: e for e in scheduler.evaluate_triggers(force=True)}
    assert evaluations["drift"].holds is False
    assert evaluations["quality"].holds is False
    assert evaluations["quality"].evidence["value"] > 0.7

    # ---- week 3: the inputs drifted; the drift rule fires and a run starts
    gen.write_week(2, flow_dir / "data")
    gen.write_week(3, flow_dir / "data")
    _post_week(app, gen, 3)
    _wait_logged(app, v1, 600)
    clock.catch_up()
    evaluations = {e.kind: e for e in scheduler.evaluate_triggers(force=True)}
    drift = evaluations["drift"]
    assert drift.holds is True, drift.note
    assert "monthly_charges" in drift.evidence["drifted"]
    assert drift.firing is not None
    assert drift.run_id is not None
    assert "not fired" in evaluations["quality"].note or not evaluations["quality"].holds
    facts = app.store.get_run(drift.run_id).facts["trigger"]
    assert facts["kind"] == "drift"
    assert facts["evidence"]["model_version"] == v1
    assert facts["evidence"]["events"] == 600

    # ---- the gate asks, with the evidence in the review report; alice approves
    retrain = app.engine.drive(drift.run_id)
    assert retrain.state is RunState.WAITING_FOR_APPROVAL
    [gate] = app.store.gates_of_run(retrain.id)
    report = Path(gate.report_path or "")
    html = (report.parent / "report.html").read_text()
    assert "Why this run started" in html
    assert "drift psi &gt; 0.2 on endpoint churn" in html
    assert "monthly_charges" in html
    assert '"trigger"' in report.read_text()
    assert _approve(app, retrain.id) is RunState.SUCCEEDED

    # ---- the endpoint rolled over to the retrained model, and the rule starts afresh
    endpoint = app.store.get_endpoint("churn")
    assert endpoint is not None
    retrained = app.store.get_model_version(endpoint.model_version_id or "")
    assert retrained.run_id == retrain.id
    v2 = retrained.label
    assert v2 != v1
    with httpx.Client(base_url=endpoint.url, trust_env=False, timeout=30) as client:
        row = dict(zip(gen.FEATURES, gen.week_rows(3, 1, seed=2)[0][0], strict=True))
        assert client.post("/predict", json={"rows": [row]}).json()["model_version"] == v2
    clock.catch_up()
    evaluations = {e.kind: e for e in scheduler.evaluate_triggers(force=True)}
    assert evaluations["drift"].holds is None  # v2 has too few events of its own yet
    firings = {f.kind: f for f in app.store.list_firings(flow="churn-weekly")}
    assert firings["schedule"].state is FiringState.STARTED
    assert firings["drift"].run_id == retrain.id


def _wait_logged(app: App, label: str, n: int) -> None:
    """The endpoint writes its log in batches off the request path: wait for them."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = app.store.predictions_between(
            "churn", since=0, until=time.time() + 60, model_version=label
        )
        if len(got) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"only {len(got)} of {n} predictions were logged")
