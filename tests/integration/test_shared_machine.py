"""One process driving several runs at once shares one machine between them.

`SIGNOFF_SLOTS`, `SIGNOFF_GPUS` and the memory budget are the process's, not each run's: three
runs driven at once by one worker, each with a task asking the only GPU, run those tasks one
after the other, each seeing `CUDA_VISIBLE_DEVICES=0`; and two-slot tasks on a two-slot
machine do not overlap either. Before, every run's driver had a pool of its own, so all of
them ran at once on the same GPU id.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.states import RunState
from signoff.engine.driving import RunDriver
from signoff.spec import load_flow

TASK = """\
import json, os, sys, time
start = time.time()
time.sleep(0.6)
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({"start": start, "end": time.time(),
                          "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\\n")
"""

FLOW = """\
flow: {name}
tasks:
  - title: work
    command: python task.py {log}
    resources: {resources}
"""


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2, gpus="1"))
    try:
        yield a
    finally:
        a.close()


def _intervals(log: Path) -> list[dict[str, float | str | None]]:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return sorted(rows, key=lambda r: float(r["start"] or 0))


def _drive_three(app: App, tmp_path: Path, name: str, resources: str) -> Path:
    project = tmp_path / name
    project.mkdir()
    (project / "task.py").write_text(TASK)
    log = tmp_path / f"{name}.jsonl"
    (project / "flow.yaml").write_text(FLOW.format(name=name, log=log, resources=resources))
    loaded = load_flow(project / "flow.yaml")
    runs = [
        app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
        for _ in range(3)
    ]
    driver = RunDriver(app.engine, threads=3)
    try:
        assert sorted(driver.drive_ready()) == sorted(r.id for r in runs)
        assert driver.wait_idle(timeout=90)
    finally:
        driver.close()
    reasons = [
        (tr.state, tr.reason, tr.exit_code) for r in runs for tr in app.store.list_task_runs(r.id)
    ] + [(x.to_state, x.reason) for r in runs for x in app.store.list_transitions(r.id)]
    assert {app.store.get_run(r.id).state for r in runs} == {RunState.SUCCEEDED}, reasons
    return log


def _overlaps(rows: list[dict[str, float | str | None]]) -> int:
    return sum(
        1 for a, b in itertools.pairwise(rows) if float(b["start"] or 0) < float(a["end"] or 0)
    )


def test_runs_driven_at_once_take_turns_on_the_one_gpu(app: App, tmp_path: Path) -> None:
    rows = _intervals(_drive_three(app, tmp_path, "gpu-runs", "{gpu: 1}"))
    assert len(rows) == 3
    assert {r["gpus"] for r in rows} == {"0"}
    assert _overlaps(rows) == 0


def test_runs_driven_at_once_share_the_cpu_slots(app: App, tmp_path: Path) -> None:
    rows = _intervals(_drive_three(app, tmp_path, "cpu-runs", "{cpu: 2}"))
    assert len(rows) == 3
    assert {r["gpus"] for r in rows} == {None}
    assert _overlaps(rows) == 0
