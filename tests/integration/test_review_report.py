"""The review report of the recsys example, run for real twice on a real store.

The first run is approved and deployed, so its model becomes the champion; the second run,
with another seed, stops at its gate with a report that compares its challenger with that
champion: drift of the training data, metric and per-slice deltas, plots, and the digest the
gate recorded.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.states import RunState
from signoff.engine.engine import new_id
from signoff.gates.decide import decide
from signoff.report.report import text_summary, write_report
from signoff.spec import load_flow

FLOW = Path(__file__).resolve().parents[2] / "examples" / "recsys" / "flow.yaml"
SMALL = {"n_users": 300, "n_items": 80}


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url))
    try:
        yield a
    finally:
        for ep in a.store.list_endpoints():
            if ep.pid:
                a.endpoints.stop(ep.pid)
        a.close()


def _run(app: App, **params: Any) -> str:
    loaded = load_flow(FLOW)
    run = app.engine.start_run(
        loaded.spec, base_dir=loaded.base_dir, params={**SMALL, **params}, started_by="carol"
    )
    return app.engine.drive(run.id).id


class _Page(HTMLParser):
    """Checks the page parses, collects its tags and the inline SVG documents."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_second_run_is_reviewed_against_the_champion(app: App) -> None:
    first = _run(app)
    assert app.store.get_run(first).state is RunState.WAITING_FOR_APPROVAL
    first_report = json.loads(Path(app.store.gates_of_run(first)[0].report_path or "").read_text())
    assert first_report["summary"]["verdict"] == "no champion"
    assert first_report["drift"]["computed"] is False

    decide(
        app.store,
        app.engine.clock,
        first,
        actor="alice",
        approve=True,
        comment="first model",
        channel="test",
        new_id=new_id,
    )
    assert app.engine.drive(first).state is RunState.SUCCEEDED
    champion_id = app.store.aliases("recsys")["champion"]
    champion = app.store.get_model_version(champion_id)

    second = _run(app, seed=8)
    run = app.store.get_run(second)
    assert run.state is RunState.WAITING_FOR_APPROVAL
    [gate] = app.store.gates_of_run(second)
    json_path = Path(gate.report_path or "")
    body = json_path.read_bytes()
    assert gate.report_digest == hashlib.sha256(body).hexdigest()
    report = json.loads(body)
    challenger = app.store.get_model_version(gate.model_version_id or "")

    # the select task scored both models on this run's held-out users (compare_to: champion)
    [pick] = [tr for tr in app.store.list_task_runs(second) if tr.task_name == "pick-champion"]
    same = pick.result["comparison"]
    assert same["same_holdout"] is True
    assert same["champion_label"] == champion.label

    # summary
    summary = report["summary"]
    assert summary["challenger"]["label"] == challenger.label
    assert summary["champion"] == champion.label
    headline = summary["headline"]
    assert headline["metric"] == "ndcg_at_10"
    assert headline["delta"] == pytest.approx(
        same["challenger"]["ndcg_at_10"] - same["champion"]["ndcg_at_10"]
    )
    assert summary["verdict"] in ("better", "worse", "equal")
    assert champion.label in summary["verdict_line"]

    # drift against the champion's training sample
    drift = report["drift"]
    assert drift["computed"] is True
    assert drift["reference"] == champion.label
    names = [f["name"] for f in drift["features"]]
    assert names == [s["name"] for s in challenger.signature]
    for f in drift["features"]:
        assert f["psi"] >= 0
        assert 0 <= f["ks"] <= 1
    assert summary["drift_flag"] == any(f["psi"] > 0.2 for f in drift["features"])

    # data: the ingest task's fingerprint, differing from the champion's run (other seed)
    [ingest] = report["data"]
    assert ingest["task"] == "ingest"
    assert "--seed 8" in ingest["command"]
    assert ingest["fingerprint"]["files"] == 3
    assert ingest["fingerprint"]["rows"] == 300 * 30 + 300 + 80
    assert ingest["same_as_champion"] is False

    # candidates: every grid combination
    [board] = report["leaderboards"]
    assert len(board["rows"]) == 4
    assert {r["algorithm"] for r in board["rows"]} == {"xgboost", "random_forest"}

    # challenger vs champion, per slice
    comparison = report["comparison"]
    by_metric = {m["metric"]: m for m in comparison["metrics"]}
    assert comparison["same_holdout"] is True
    assert by_metric["auc"]["champion"] == pytest.approx(same["champion"]["auc"])
    assert by_metric["auc"]["delta"] == pytest.approx(
        same["challenger"]["auc"] - same["champion"]["auc"]
    )
    slices = {(s["metric"], s["slice"]) for s in comparison["slices"]}
    assert {("ndcg_at_10", "new_users"), ("ndcg_at_10", "regulars")} <= slices
    assert all(s["delta"] is not None for s in comparison["slices"])

    # plots, in the data and drawn in the page
    figures = report["figures"]
    assert figures["challenger"]["roc"]["auc"] == pytest.approx(challenger.metrics["auc"], abs=1e-6)
    assert figures["champion"]["label"] == champion.label
    html = json_path.with_suffix(".html").read_text()
    page = _Page()
    page.feed(html)
    page.close()
    assert "script" not in page.tags
    svgs = html.split("<svg")[1:]
    assert len(svgs) >= 6
    for chunk in svgs:
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")

    # reproducibility and timeline
    repro = report["reproducibility"]
    assert repro["seeds"] == {"seed": 8}
    assert repro["environment"]["packages"]["numpy"]
    assert report["timeline"][0]["what"] == "run"
    assert report["timeline"][0]["time"].endswith("UTC")

    # the same inputs give the same bytes (the timeline has grown since the gate opened)
    spec = app.store.get_flow(run.flow_hash)
    now = report["generated_at"]
    a_path, a_digest = write_report(app.store, run, spec, challenger, json_path.parent / "a", now)
    b_path, b_digest = write_report(app.store, run, spec, challenger, json_path.parent / "b", now)
    assert a_digest == b_digest
    assert a_path.read_bytes() == b_path.read_bytes()
    assert (a_path.parent / "report.html").read_text() == (
        b_path.parent / "report.html"
    ).read_text()
    again = json.loads(a_path.read_bytes())
    assert {k: v for k, v in again.items() if k != "timeline"} == {
        k: v for k, v in report.items() if k != "timeline"
    }
    assert any(line.startswith("verdict:") for line in text_summary(report))
