"""The reference scenario through the real CLI: train, gate, refuse, approve, serve, reject."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
FLOW = REPO / "examples" / "recsys" / "flow.yaml"
SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]
SMALL = ["--param", "n_users=300", "--param", "n_items=80"]

pytestmark = pytest.mark.e2e


class Cli:
    """Runs ``signoff`` in a subprocess against one home folder."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.env = {
            **os.environ,
            "SIGNOFF_HOME": str(home),
            "SIGNOFF_DATABASE_URL": database_url,
            "COLUMNS": "200",
        }
        self.cwd = home.parent

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*SIGNOFF, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"signoff {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Iterator[Cli]:
    c = Cli(tmp_path / "home", database_url)
    try:
        yield c
    finally:
        for ep in c.json("endpoints"):
            if ep["state"] == "serving":
                c("endpoints", "stop", ep["name"])


def _predict(url: str) -> httpx.Response:
    row = {
        "user_age": 2,
        "user_activity": 0.5,
        "user_history_size": 10,
        "item_popularity": 0.3,
        "item_price_tier": 1,
        "item_freshness": 0.4,
        "same_category": 1,
        "user_item_affinity": 0.6,
    }
    return httpx.post(f"{url}/predict", json={"rows": [row, row]}, timeout=10)


def test_reference_scenario(cli: Cli) -> None:
    started = cli.json("run", str(FLOW), *SMALL)
    run_id = started["run_id"]
    assert started["state"] == "waiting_for_approval"
    assert started["gate"]["targets"] == ["alice", "bob"]

    shown = cli.json("show", run_id)
    states = {t["label"]: t["state"] for t in shown["tasks"]}
    assert states["train-xgb[0]"] == states["train-forest[1]"] == "succeeded"
    assert states["sign-off"] == "waiting_for_approval"
    assert states["deploy"] == "pending"
    trained = [t for t in shown["tasks"] if t["task"].startswith("train")]
    assert all("ndcg_at_10" in t["metrics"] for t in trained)
    assert cli.json("endpoints") == []

    refused = cli("approve", run_id, "--as", "mallory", check=False)
    assert refused.returncode != 0
    assert "not an approver" in refused.stderr
    assert "Traceback" not in refused.stderr
    decisions = cli.json("show", run_id)["gates"][0]["decisions"]
    assert [(d["actor"], d["decision"]) for d in decisions] == [("mallory", "refused")]

    approved = cli.json("approve", run_id, "--as", "alice", "--comment", "ship it")
    assert approved["state"] == "succeeded"
    endpoint = approved["deployments"][0]
    url = endpoint["url"]
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    answer = _predict(url)
    assert answer.status_code == 200
    scores = answer.json()["predictions"]
    assert len(scores) == 2
    assert all(0.0 <= s <= 1.0 for s in scores)
    listed = cli.json("endpoints")
    assert [(e["name"], e["state"], e["model_version"]) for e in listed] == [
        ("recsys", "serving", endpoint["model_version"])
    ]

    logs = cli("logs", run_id, "train-xgb[0]").stdout
    assert "auc" in logs

    # The registry: the deployed version is the champion; the history says who and why.
    versions = cli.json("models", "recsys")
    champion = [v["label"] for v in versions if "champion" in v["aliases"]]
    assert champion == [endpoint["model_version"]]
    history = cli.json("models", "recsys", "--history")
    assert [(h["alias"], h["model_version"]) for h in history] == [
        ("challenger", endpoint["model_version"]),
        ("champion", endpoint["model_version"]),
    ]
    assert "approved by alice" in history[-1]["reason"]

    # The reference example reproduces exactly.
    report = cli.json("reproduce", run_id)
    assert report["reproduced"] is True
    assert report["environment_differences"] == []
    assert {m["task"] for m in report["metrics"]} >= {"train-xgb[0]", "train-forest[1]"}

    # A second run is rejected: it ends `rejected`, deploy is skipped, production is untouched.
    second = cli.json("run", str(FLOW), *SMALL, "--param", "seed=11")
    rejected = cli.json(
        "reject", second["run_id"], "--as", "bob", "--comment", "ndcg dropped on new users"
    )
    assert rejected["state"] == "rejected"
    states = {t["label"]: t["state"] for t in cli.json("show", second["run_id"])["tasks"]}
    assert states["sign-off"] == "rejected"
    assert states["deploy"] == "skipped"
    after = cli.json("endpoints")
    assert [(e["state"], e["model_version"]) for e in after] == [
        ("serving", endpoint["model_version"])
    ]
    assert _predict(url).json()["model_version"] == endpoint["model_version"]

    runs = cli.json("runs")
    assert [r["state"] for r in runs] == ["rejected", "succeeded", "succeeded"]


def test_demo_stops_at_the_gate_and_says_how_to_approve(cli: Cli) -> None:
    proc = cli("demo", *SMALL, "--no-server")
    assert "waits at gate sign-off for alice, bob" in proc.stdout
    assert "approve " in proc.stdout
    assert "--as alice" in proc.stdout
    assert "review report:" in proc.stdout
    runs = cli.json("runs")
    assert [(r["flow"], r["state"]) for r in runs] == [("weekly-recsys", "waiting_for_approval")]
    report = Path(cli.json("show", runs[0]["run_id"])["gates"][0]["report_html"])
    html = report.read_text()
    assert "Candidates" in html
    assert "Challenger vs champion" in html
    assert "ndcg_at_10" in html


def test_detached_run_reaches_the_gate_on_its_own(cli: Cli) -> None:
    started = cli.json("run", str(FLOW), *SMALL, "--detach")
    assert started["state"] in ("queued", "running", "waiting_for_approval")
    deadline = time.monotonic() + 120
    state = started["state"]
    while time.monotonic() < deadline and state != "waiting_for_approval":
        time.sleep(0.5)
        state = cli.json("show", started["run_id"])["state"]
    assert state == "waiting_for_approval"


def test_invalid_flow_file_names_line_column_and_field(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: x\ntasks:\n  - title: a\n    comand: echo hi\n")
    proc = cli("run", str(bad), check=False)
    assert proc.returncode == 2
    assert f"{bad}:4:5: tasks[0].comand:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli.json("runs") == []
