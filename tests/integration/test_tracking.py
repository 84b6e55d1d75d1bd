"""What a run records about itself, side-by-side comparison, and reproduction."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.engine.reproduce import reproduce
from signoff.spec import load_flow
from signoff.views.build import comparison, run_detail

FLOW = Path(__file__).parents[1] / "resources" / "tracking" / "flow.yaml"
TINY = Path(__file__).parents[1] / "resources" / "flows" / "tiny" / "flow.yaml"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2))
    try:
        yield a
    finally:
        a.close()


def _run(app: App, flow: Path, base_dir: Path | None = None, **params: object) -> str:
    loaded = load_flow(flow)
    run = app.engine.start_run(
        loaded.spec,
        base_dir=base_dir or loaded.base_dir,
        params=params,  # type: ignore[arg-type]
        started_by="carol",
    )
    return app.engine.drive(run.id).id


def test_a_run_records_code_environment_and_seeds(app: App, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for f in FLOW.parent.iterdir():
        (project / f.name).write_bytes(f.read_bytes())
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "flow"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    clean = app.store.get_run(_run(app, project / "flow.yaml"))
    assert clean.facts["code"]["git_commit"] == commit
    assert clean.facts["code"]["dirty"] is False
    assert clean.facts["seeds"] == {"seed": 3}
    env = clean.facts["environment"]
    assert env["packages"]["signoff"] == "0.1.0"
    assert len(env["lock_digest"]) == 64
    (project / "noisy.py").write_text((project / "noisy.py").read_text() + "# edited\n")
    dirty = app.store.get_run(_run(app, project / "flow.yaml"))
    assert dirty.facts["code"]["dirty"] is True
    assert dirty.facts["code"]["dirty_digest"] != clean.facts["code"]["dirty_digest"]
    assert dirty.facts["code_snapshot"] != clean.facts["code_snapshot"]


def test_select_names_the_challenger_and_keeps_history(app: App) -> None:
    run_id = _run(app, TINY)
    trs = {tr.label: tr for tr in app.store.list_task_runs(run_id)}
    assert trs["pick"].result["winner_label"] == "train[1]"
    # the tiny flow logs no model, so no alias moves; a model-logging flow is covered end to end
    assert app.store.list_model_versions() == []


def test_compare_lines_up_params_and_metrics(app: App) -> None:
    first = _run(app, TINY)
    columns = comparison(app.store, [f"{first}:train[0]", f"{first}:train[1]"])
    assert [c.column for c in columns] == [f"train[0]@{first[:6]}", f"train[1]@{first[:6]}"]
    assert [c.metrics["score"] for c in columns] == [0.2, 0.7]
    assert [c.params["quality"] for c in columns] == [2, 7]
    whole = comparison(app.store, [first])
    assert {c.column.split("@")[0] for c in whole} == {
        "prepare",
        "train[0]",
        "train[1]",
        "train[2]",
        "after",
    }


def test_a_seeded_run_reproduces_exactly(app: App) -> None:
    original = _run(app, FLOW, seed=11)
    report = reproduce(app.engine, original, started_by="dave")
    assert report.exact
    assert report.state == "succeeded"
    assert [(c.task, c.metric, c.match) for c in report.checks] == [("fit", "score", True)]
    assert report.artifacts == (
        {
            "task": "gen",
            "original": report.artifacts[0]["original"],
            "reproduced": report.artifacts[0]["original"],
            "match": True,
        },
    )
    assert report.environment == ()
    again = app.store.get_run(report.reproduction_run)
    assert again.facts["reproduces"] == original


def test_an_unseeded_run_is_reported_as_not_reproduced(app: App) -> None:
    original = _run(app, FLOW, seed="none")
    report = reproduce(app.engine, original, started_by="dave")
    assert not report.exact
    [check] = report.checks
    assert (check.task, check.metric, check.match) == ("fit", "score", False)
    assert check.original != check.reproduced


def test_a_reproduction_never_opens_a_gate(app: App) -> None:
    original = _run(app, TINY)
    report = reproduce(app.engine, original, started_by="dave")
    states = {tr.label: tr.state.value for tr in app.store.list_task_runs(report.reproduction_run)}
    assert states["approve"] == "skipped"
    assert states["after"] == "skipped"
    assert report.state == "succeeded"
    assert app.store.gates_of_run(report.reproduction_run) == []


def test_show_records_the_data_each_task_read(app: App) -> None:
    run_id = _run(app, FLOW, seed=3)
    detail = run_detail(app.store, app.store.get_run(run_id)).model_dump(mode="json")
    tasks = {t["label"]: t for t in detail["tasks"]}
    gen, fit = tasks["gen"], tasks["fit"]
    assert gen["outputs"]["files"] == 1
    assert fit["inputs"] == {"gen": gen["outputs"]}
    assert fit["duration_seconds"] is not None
    assert fit["duration_seconds"] >= 0
    assert detail["facts"]["seeds"] == {"seed": 3}
