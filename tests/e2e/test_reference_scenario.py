"""The reference scenario through the real CLI: train, gate, refuse, approve, serve, reject."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    assert [r["state"] for r in runs] == ["rejected", "succeeded"]
