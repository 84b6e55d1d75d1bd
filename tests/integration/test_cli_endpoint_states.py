"""``signoff endpoints`` lists endpoints in every state, and the CLI prints data, never markup.

Before, a stopped endpoint made ``signoff endpoints`` crash with ``rich.errors.MarkupError``
(a state without a style became ``[]stopped[/]``). The listing runs through the real entry
point; endpoints that look alive are backed by a real process whose command line names
``signoff.serving`` (what the runner checks before it trusts a pid from the database).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from conftest import Attacks
from signoff.bootstrap import Settings, build_app
from signoff.cli import views
from signoff.cli.main import main
from signoff.domain.records import EndpointRecord, RunRecord
from signoff.domain.states import RunState
from signoff.views import build
from signoff.views.models import AliasMove, CompareColumn, GateRow, ModelRow, RunDetail

# what the code writes ("serving", "stopped"), what the views derive ("down"), states other
# versions or tools may have written, and strings that look like markup
LIVE_STATES = ["serving", "starting", "failed", "weird-state", "[/]", "[bold]loud[/bold]", "[red"]


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process the runner takes for an endpoint (its command line has signoff.serving)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "signoff.serving"],
        stdin=subprocess.DEVNULL,
    )
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def _run_cli(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    capfd.readouterr()
    monkeypatch.setattr(sys, "argv", ["signoff", *args])
    code: object = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out, err = capfd.readouterr()
    return (code if isinstance(code, int) else 1), out, err


def test_endpoints_lists_every_state_plain_and_as_json(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    live_pid: int,
    attacks: Attacks,
) -> None:
    monkeypatch.setenv("SIGNOFF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    app = build_app(Settings())
    expected: dict[str, str] = {}
    try:
        now = time.time()
        for i, state in enumerate(LIVE_STATES):
            name = f"live-{i}"
            url = f"http://127.0.0.1:{9000 + i}"
            app.store.save_endpoint(EndpointRecord(name, url, 9000 + i, live_pid, None, state, now))
            expected[name] = state
        app.store.save_endpoint(
            EndpointRecord("stopped-one", "http://127.0.0.1:1", 1, None, None, "stopped", now)
        )
        expected["stopped-one"] = "stopped"
        dead = _gone_pid()
        app.store.save_endpoint(
            EndpointRecord("gone-one", "http://127.0.0.1:2", 2, dead, None, "serving", now)
        )
        expected["gone-one"] = "down"
    finally:
        app.close()

    code, out, err = _run_cli(monkeypatch, capfd, "endpoints", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["name"]: r["state"] for r in rows} == expected

    code, out, err = _run_cli(monkeypatch, capfd, "endpoints")
    assert (code, err) == (0, ""), err
    assert "Traceback" not in out
    lines = out.splitlines()
    for name, state in expected.items():
        [line] = [line for line in lines if f" {name} " in line]
        assert f" {state} " in line, (name, state, line)  # printed as it is, brackets too
    shown = [
        name
        for name, state in expected.items()
        if any(f" {name} " in line and f" {state} " in line for line in lines)
    ]
    attacks.record(
        "markup or unknown endpoint state in the database, listed by signoff endpoints",
        "cli",
        len(expected),
        len(shown),
    )


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=300, highlight=False, soft_wrap=True), buffer


MARKUP = "[/] [bold]x[/bold] [red :smile:"
_GATE = {
    "gate_id": "g1",
    "task": "gate",
    "state": "waiting_for_approval",
    "targets": ["a"],
    "quorum": "all",
    "model_version_id": None,
    "model_digest": None,
    "report": None,
    "report_html": None,
    "report_digest": None,
    "opened_at": 0.0,
    "expires_at": 1.0,
    "decisions": [],
}


def test_runs_and_run_details_print_reasons_and_names_as_they_are() -> None:
    console, buffer = _console()
    run = RunRecord(
        id="r1",
        flow_name=f"flow {MARKUP}",
        flow_hash="h",
        state=RunState.FAILED,
        version=1,
        params={},
        started_by="[alice]",
        work_dir="/w",
        created_at=time.time(),
        updated_at=time.time(),
        reason=f"why {MARKUP}",
    )
    views.print_runs(console, [build.run_row(run)])
    task = {
        "task_run_id": "t1",
        "task": "t",
        "label": MARKUP,
        "kind": "exec",
        "state": "[/]",
        "attempt": 1,
        "params": {"p": MARKUP},
        "logged_params": {},
        "metrics": {},
        "reason": MARKUP,
        "started_at": None,
        "ended_at": None,
        "duration_seconds": None,
        "work_dir": "/w",
        "outputs": None,
        "inputs": {},
        "result": {},
    }
    gate = {
        **_GATE,
        "task": MARKUP,
        "targets": ["[bob]"],
        "quorum": 1,
        "report_html": f"/r/{MARKUP}.html",
        "decisions": [
            {"actor": "[x]", "decision": "approve", "channel": "cli", "comment": MARKUP, "at": 0}
        ],
    }
    detail = RunDetail.model_validate(
        {
            **build.run_row(run).model_dump(),
            "flow": MARKUP,
            "reason": MARKUP,
            "flow_hash": "h",
            "params": {},
            "work_dir": "/w",
            "facts": {},
            "tasks": [task],
            "gates": [gate],
        }
    )
    views.print_detail(console, detail)
    text = buffer.getvalue()
    assert f"why {MARKUP}" in text
    assert "[alice]" in text
    assert f"run r1 · flow {MARKUP} · failed · {MARKUP}" in text
    assert f"gate {MARKUP} waiting_for_approval: approvers [bob] (quorum 1)" in text
    assert f"  review report: /r/{MARKUP}.html" in text
    assert f"  [x] approve via cli: {MARKUP}" in text


def test_gates_models_and_comparisons_print_data_as_it_is(attacks: Attacks) -> None:
    console, buffer = _console()
    gate = {**_GATE, "task": "[gate]", "targets": ["[a]"], "opened_at": time.time()}
    views.print_gates(console, [GateRow(run_id="r1", flow=MARKUP, **gate)])
    model = {"id": "m", "name": "m", "version": 1, "digest": "d"}
    views.print_models(
        console,
        [
            ModelRow(
                **model, label=f"m:{MARKUP}", flavor="[f]", aliases=["[c]"], run_id="r", metrics={}
            )
        ],
    )
    views.print_alias_history(
        console,
        [
            AliasMove(
                at=time.time(),
                alias="[champion]",
                model_version=None,
                model_version_id="[id]",
                actor="[root]",
                reason=MARKUP,
            )
        ],
    )
    column = {"task_run_id": "t", "run_id": "r", "state": "succeeded"}
    views.print_comparison(
        console,
        [
            CompareColumn(**column, column="[c1]", params={"p": "[/]"}, metrics={"auc": 0.5}),
            CompareColumn(**column, column="[c2]", params={"p": "[b]"}, metrics={"auc": 0.7}),
        ],
    )
    text = buffer.getvalue()
    markup = (MARKUP, "[gate]", "[a]", "[f]", "[c]", "[champion]", "[id]", "[root]")
    for shown in markup:
        assert shown in text, shown
    for shown in ("[c1]", "[c2]", "[/]", "[b]", "param p", "metric auc"):
        assert shown in text, shown
    attacks.record(
        "markup in stored names and reasons, printed by gates, models and history",
        "cli",
        len(markup),
        sum(shown in text for shown in markup),
    )
