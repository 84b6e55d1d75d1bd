"""Retries with backoff, timeouts, cancel, caching and leases, on real stores."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.states import RunState
from signoff.engine.engine import RunBusyError, new_id
from signoff.errors import ConflictError, GateClosedError
from signoff.gates.decide import decide
from signoff.spec import load_flow

ENGINE = Path(__file__).parents[1] / "resources" / "engine"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2))
    try:
        yield a
    finally:
        a.close()


def _start(app: App, flow: str, **params: object) -> str:
    loaded = load_flow(ENGINE / flow)
    run = app.engine.start_run(
        loaded.spec,
        base_dir=loaded.base_dir,
        params=params,  # type: ignore[arg-type]
        started_by="carol",
    )
    return run.id


def _task(app: App, run_id: str, label: str):  # type: ignore[no-untyped-def]
    return next(tr for tr in app.store.list_task_runs(run_id) if tr.label == label)


def _path(app: App, run_id: str, label: str) -> list[str]:
    tr = _task(app, run_id, label)
    return [h.to_state for h in app.store.list_transitions(run_id) if h.entity_id == tr.id]


def test_a_failed_attempt_is_retried_after_its_delay(app: App, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    run = app.engine.drive(_start(app, "retry.yaml", counter=str(counter), fail_times=1))
    assert run.state is RunState.SUCCEEDED
    flaky = _task(app, run.id, "flaky")
    assert flaky.attempt == 2
    assert counter.read_text() == "2"
    assert _path(app, run.id, "flaky") == [
        "queued",
        "running",
        "queued",
        "running",
        "succeeded",
    ]
    retry_note = [
        h.reason for h in app.store.list_transitions(run.id) if h.reason and "retry" in h.reason
    ]
    assert retry_note == [
        "attempt 1 failed (exit code 1: failing on purpose (call 1)); retry 1 of 2 in 0.2s"
    ]


def test_retries_run_out_and_the_run_fails(app: App, tmp_path: Path) -> None:
    run = app.engine.drive(_start(app, "retry.yaml", counter=str(tmp_path / "c"), fail_times=9))
    assert run.state is RunState.FAILED
    flaky = _task(app, run.id, "flaky")
    assert (flaky.state.value, flaky.attempt) == ("failed", 3)
    assert _task(app, run.id, "after").state.value == "skipped"


def test_a_command_over_its_timeout_is_stopped(app: App) -> None:
    run = app.engine.drive(_start(app, "slow.yaml"))
    assert run.state is RunState.FAILED
    sleepy = _task(app, run.id, "sleepy")
    assert sleepy.reason == "timed out after 1s"
    assert _task(app, run.id, "after").state.value == "skipped"


def test_cache_reuses_an_identical_task_run(app: App, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    first = app.engine.drive(_start(app, "cached.yaml", counter=str(counter)))
    second = app.engine.drive(_start(app, "cached.yaml", counter=str(counter)))
    assert first.state is second.state is RunState.SUCCEEDED
    assert counter.read_text() == "1"  # the command ran once
    reused = _task(app, second.id, "expensive")
    original = _task(app, first.id, "expensive")
    assert reused.reason == f"cached: reused expensive of run {first.id}"
    assert reused.result["cached_from"] == original.id
    assert app.store.list_artifacts(reused.id) == [
        type(a)(reused.id, a.path, a.sha256, a.size) for a in app.store.list_artifacts(original.id)
    ]
    use_log = Path(_task(app, second.id, "use").work_dir) / "stdout.log"
    assert use_log.read_text() == "data\n"
    # A different input param is a different key: it runs again.
    third = app.engine.drive(_start(app, "cached.yaml", counter=str(tmp_path / "other")))
    assert _task(app, third.id, "expensive").reason is None


def test_cancel_at_the_gate(app: App, tmp_path: Path) -> None:
    run_id = _start(app, "long.yaml", marker=str(tmp_path / "m"))
    app.engine.drive(run_id)
    run = app.engine.cancel(run_id, actor="carol", reason="superseded by hand")
    assert run.state is RunState.CANCELLED
    states = {tr.label: tr.state.value for tr in app.store.list_task_runs(run_id)}
    assert states == {
        "first": "succeeded",
        "long": "succeeded",
        "gate": "cancelled",
        "after": "cancelled",
    }
    with pytest.raises(GateClosedError):
        decide(
            app.store,
            app.engine.clock,
            run_id,
            actor="alice",
            approve=True,
            comment=None,
            channel="test",
            new_id=new_id,
        )
    with pytest.raises(ConflictError, match="already ended"):
        app.engine.cancel(run_id, actor="carol")


def test_cancel_stops_a_running_command(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LONG_TASK_SECONDS", "60")
    marker = tmp_path / "m"
    run_id = _start(app, "long.yaml", marker=str(marker))
    result: dict[str, object] = {}
    driver = threading.Thread(target=lambda: result.update(run=app.engine.drive(run_id)))
    driver.start()
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(marker.read_text().split()[0])
    app.engine.cancel(run_id, actor="carol")
    driver.join(timeout=30)
    assert not driver.is_alive()
    assert getattr(result["run"], "state", None) is RunState.CANCELLED
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert _task(app, run_id, "long").state.value == "cancelled"


def test_a_live_lease_keeps_a_second_driver_out(app: App) -> None:
    run_id = _start(app, "long.yaml", marker="/dev/null")
    now = app.engine.clock.now()
    assert app.store.claim_run(run_id, "other-host:1", now=now, ttl=60) is None
    with pytest.raises(RunBusyError, match="other-host:1"):
        app.engine.drive(run_id)
    # An expired lease is taken over.
    assert app.store.claim_run(run_id, "other-host:1", now=now - 120, ttl=60) is None
    assert app.store.lease_of(run_id)[0] == "other-host:1"
    run = app.engine.drive(run_id)
    assert run.state is RunState.WAITING_FOR_APPROVAL
    assert app.store.lease_of(run_id) == (None, None)
