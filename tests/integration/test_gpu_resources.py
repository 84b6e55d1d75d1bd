"""GPUs and memory on the local executor: real commands, and a real flow run on the stores."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.ports import TaskExecution, TaskOutcome
from signoff.domain.specs import Resources
from signoff.domain.states import RunState
from signoff.executors.gpus import Gpus
from signoff.executors.local import LocalExecutor
from signoff.spec import parse_flow


@pytest.fixture
def executor() -> Iterator[LocalExecutor]:
    ex = LocalExecutor(slots=4, gpus=Gpus(("0", "2"), "SIGNOFF_GPUS"), memory_mb=4000)
    yield ex
    ex.shutdown()


def _run(tmp_path: Path, name: str, gpu: float = 0, memory_mb: int | None = None) -> TaskExecution:
    work = tmp_path / name
    work.mkdir()
    return TaskExecution(
        task_run_id=name,
        command='echo "gpus=${CUDA_VISIBLE_DEVICES-unset}"',
        work_dir=work,
        env={"SIGNOFF_TASK_RUN_ID": name},
        gpu=gpu,
        memory_mb=memory_mb,
    )


def _wait_all(ex: LocalExecutor, n: int) -> dict[str, TaskOutcome]:
    outcomes: dict[str, TaskOutcome] = {}
    deadline = time.monotonic() + 30
    while len(outcomes) < n and time.monotonic() < deadline:
        outcomes.update((o.task_run_id, o) for o in ex.wait_any(timeout=1.0))
    return outcomes


def _said(tmp_path: Path, name: str) -> str:
    return (tmp_path / name / "stdout.log").read_text().strip()


def test_each_command_gets_its_own_gpus(executor: LocalExecutor, tmp_path: Path) -> None:
    executor.submit(_run(tmp_path, "a", gpu=1))
    executor.submit(_run(tmp_path, "b", gpu=0.5))
    assert not executor.fits(Resources(gpu=1))  # both ids are held
    executor.submit(_run(tmp_path, "cpu"))
    outcomes = _wait_all(executor, 3)
    assert {o.exit_code for o in outcomes.values()} == {0}
    assert {_said(tmp_path, "a"), _said(tmp_path, "b")} == {"gpus=0", "gpus=2"}
    assert _said(tmp_path, "cpu") == "gpus=unset"  # a CPU task's environment is as before
    assert executor.fits(Resources(gpu=2))
    executor.submit(_run(tmp_path, "both", gpu=2))
    assert _wait_all(executor, 1)["both"].exit_code == 0
    assert _said(tmp_path, "both") == "gpus=0,2"


def test_submit_refuses_what_the_machine_does_not_have(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    executor.submit(_run(tmp_path, "many", gpu=3))
    executor.submit(_run(tmp_path, "big", memory_mb=4001))
    outcomes = _wait_all(executor, 2)
    assert outcomes["many"] == TaskOutcome(
        "many", -1, error="asks for 3 GPUs; this machine has 2 (SIGNOFF_GPUS)"
    )
    assert outcomes["big"].error == "asks for 4001 MB of memory; this machine has 4000 MB"
    assert not (tmp_path / "many" / "stdout.log").exists()  # nothing started
    assert executor.in_flight() == 0
    assert executor.fits(Resources(gpu=2, memory_mb=4000))


FLOW = """\
flow: gpus
tasks:
  - title: a
    command: {wait}
    resources: {{gpu: 1}}
  - title: b
    command: {wait}
    resources: {{gpu: 1}}
  - title: c
    command: echo "gpus=$CUDA_VISIBLE_DEVICES"
    resources: {{gpu: 1}}
  - title: huge
    command: touch {shared}/huge-ran
    resources: {{gpu: 99}}
"""
# a and b each say their GPUs, then wait (up to 10 s) until both have spoken: they overlap.
WAIT = (
    'echo "gpus=$CUDA_VISIBLE_DEVICES"; touch {shared}/$SIGNOFF_TASK; '
    "for i in $(seq 100); do test -e {shared}/a -a -e {shared}/b && exit 0; sleep 0.1; done; "
    "exit 1"
)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    settings = Settings(home=tmp_path / "home", database_url=database_url, slots=4, gpus="2")
    a = build_app(settings)
    try:
        yield a
    finally:
        a.close()


def test_a_flow_run_hands_out_gpus_and_fails_what_asks_too_many(app: App, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    text = FLOW.format(wait=WAIT.format(shared=shared), shared=shared)
    loaded = parse_flow(text, base_dir=tmp_path)
    run = app.engine.start_run(loaded.spec, base_dir=tmp_path, params={}, started_by="carol")
    run = app.engine.drive(run.id)
    trs = {tr.label: tr for tr in app.store.list_task_runs(run.id)}
    assert run.state is RunState.FAILED
    assert {label: tr.state.value for label, tr in trs.items()} == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "succeeded",
        "huge": "failed",
    }
    said = {k: (Path(trs[k].work_dir) / "stdout.log").read_text().strip() for k in "abc"}
    assert {said["a"], said["b"]} == {"gpus=0", "gpus=1"}
    assert said["c"] in ("gpus=0", "gpus=1")
    # c waited for a GPU: it started only once a or b had ended.
    first_end = min(trs["a"].ended_at or 0, trs["b"].ended_at or 0)
    assert (trs["c"].started_at or 0) >= first_end
    huge = trs["huge"]
    assert huge.reason == "resources: asks for 99 GPUs; this machine has 2 (SIGNOFF_GPUS)"
    assert not (shared / "huge-ran").exists()
    assert not (Path(huge.work_dir) / "stdout.log").exists()


SMI_FLOW = """\
flow: smi
tasks:
  - title: one
    command: echo "gpus=$CUDA_VISIBLE_DEVICES"
    resources: {gpu: 1}
  - title: two
    command: echo never
    resources: {gpu: 2}
"""


def test_without_signoff_gpus_the_run_gets_what_nvidia_smi_lists(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "GPU 0: NVIDIA L4 (UUID: GPU-5c3e)"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("SIGNOFF_GPUS", raising=False)
    app = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2))
    try:
        loaded = parse_flow(SMI_FLOW, base_dir=tmp_path)
        run = app.engine.start_run(loaded.spec, base_dir=tmp_path, params={}, started_by="carol")
        run = app.engine.drive(run.id)
        trs = {tr.label: tr for tr in app.store.list_task_runs(run.id)}
    finally:
        app.close()
    assert (Path(trs["one"].work_dir) / "stdout.log").read_text() == "gpus=0\n"
    assert trs["two"].reason == "resources: asks for 2 GPUs; this machine has 1 (nvidia-smi)"
