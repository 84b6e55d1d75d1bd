"""The CLI resolves what a person typed for a run: its id, or a unique prefix taken literally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff.bootstrap import Settings, build_app
from signoff.cli.commands import build_cli
from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec, TaskKind, TaskSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.errors import NotFoundError

SPEC = FlowSpec(name="f", tasks=(TaskSpec(name="a", kind=TaskKind.EXEC, command="true"),))


@pytest.fixture
def home(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose store holds two queued runs: ``ab_c…`` and ``abxc…``."""
    home = tmp_path / "home"
    for name in ("SIGNOFF_HOME", "SIGNOFF_DATABASE_URL", "SIGNOFF_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNOFF_HOME", str(home))
    monkeypatch.setenv("SIGNOFF_DATABASE_URL", database_url)
    monkeypatch.setenv("SIGNOFF_USER", "carol")
    app = build_app(Settings(home=home, database_url=database_url))
    try:
        app.store.save_flow(SPEC, None)
        for run_id in ("ab_c00000001", "abxc00000001"):
            run = RunRecord(
                run_id, "f", SPEC.spec_hash, RunState.QUEUED, 0, {}, "carol", "/w", 1, 1
            )
            tr = TaskRunRecord(
                run_id[:-1] + "t", run_id, "a", -1, TaskKind.EXEC, {},
                TaskRunState.PENDING, 0, 0, "/w/a", 1.0,
            )  # fmt: skip
            app.store.create_run(run, [tr])
    finally:
        app.close()
    return home


def test_show_takes_a_unique_prefix_literally(home: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(build_cli(), ["show", "ab_", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["run_id"] == "ab_c00000001"
    ambiguous = runner.invoke(build_cli(), ["show", "ab"])
    assert isinstance(ambiguous.exception, NotFoundError)  # main() prints it as one line
    assert "run id prefix 'ab' is ambiguous" in str(ambiguous.exception)
    missing = runner.invoke(build_cli(), ["show", "ab%"])
    assert isinstance(missing.exception, NotFoundError)
    assert "no run 'ab%'" in str(missing.exception)


def test_cancel_takes_a_prefix(home: Path) -> None:
    cancelled = CliRunner().invoke(build_cli(), ["cancel", "abx"])
    assert cancelled.exit_code == 0, cancelled.output
    assert "run abxc00000001 cancelled" in cancelled.output
