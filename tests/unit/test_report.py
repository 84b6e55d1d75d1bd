"""The review report from a store fake: its JSON keys, determinism, HTML, and the SVG builders."""

from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from signoff.domain.records import (
    ArtifactRecord,
    MetricRecord,
    ModelVersionRecord,
    RunRecord,
    TaskRunRecord,
    TransitionRecord,
)
from signoff.domain.specs import ConditionSpec, FlowSpec, GatePolicy, ParamSpec, TaskKind, TaskSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.errors import NotFoundError
from signoff.report import plots
from signoff.report.report import FORMAT, build_report, read_report, text_summary, write_report
from signoff.stats import curves

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_700_000_000.0
FEATURES = ("age", "spend")


@dataclass
class FakeStore:
    """The read side of the Store port, in memory (what the report uses)."""

    task_runs: dict[str, TaskRunRecord] = field(default_factory=dict)
    metrics: list[MetricRecord] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    artifacts: dict[str, list[ArtifactRecord]] = field(default_factory=dict)
    models: dict[str, ModelVersionRecord] = field(default_factory=dict)
    alias: dict[str, dict[str, str]] = field(default_factory=dict)
    transitions: list[TransitionRecord] = field(default_factory=list)

    def list_task_runs(self, run_id: str) -> list[TaskRunRecord]:
        return [tr for tr in self.task_runs.values() if tr.run_id == run_id]

    def get_task_run(self, task_run_id: str) -> TaskRunRecord:
        if task_run_id not in self.task_runs:
            raise NotFoundError(task_run_id)
        return self.task_runs[task_run_id]

    def list_metrics(self, task_run_ids: list[str]) -> list[MetricRecord]:
        return [m for m in self.metrics if m.task_run_id in task_run_ids]

    def logged_params(self, task_run_id: str) -> dict[str, Any]:
        return dict(self.params.get(task_run_id, {}))

    def logged_tags(self, task_run_id: str) -> dict[str, str]:
        return dict(self.tags.get(task_run_id, {}))

    def list_artifacts(self, task_run_id: str) -> list[ArtifactRecord]:
        return list(self.artifacts.get(task_run_id, []))

    def get_model_version(self, model_version_id: str) -> ModelVersionRecord:
        return self.models[model_version_id]

    def aliases(self, name: str) -> dict[str, str]:
        return dict(self.alias.get(name, {}))

    def list_transitions(self, run_id: str) -> list[TransitionRecord]:
        return list(self.transitions)


def _npz(path: Path, **arrays: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
            archive.writestr(f"{key}.npy", buffer.getvalue())


SPEC = FlowSpec(
    name="weekly",
    params=(ParamSpec("seed", (7,)),),
    tasks=(
        TaskSpec("ingest", TaskKind.DATA, command="python gen.py --seed {{ seed }}"),
        TaskSpec(
            "train",
            TaskKind.EXEC,
            command="python train.py --depth {{ depth }}",
            params=(ParamSpec("depth", (3, 6)),),
            depends_on=("ingest",),
        ),
        TaskSpec(
            "pick",
            TaskKind.SELECT,
            depends_on=("train",),
            conditions=(ConditionSpec("ndcg", "max", 0.1), ConditionSpec("auc", "max", 0.5)),
        ),
        TaskSpec(
            "approve",
            TaskKind.HUMAN_VALIDATION,
            depends_on=("pick",),
            gate=GatePolicy(targets=("alice",)),
        ),
    ),
)


def _task_run(
    store: FakeStore,
    root: Path,
    id_: str,
    run_id: str,
    name: str,
    index: int,
    kind: TaskKind,
    params: dict[str, Any],
    result: dict[str, Any] | None = None,
) -> TaskRunRecord:
    tr = TaskRunRecord(
        id=id_,
        run_id=run_id,
        task_name=name,
        index=index,
        kind=kind,
        params=params,
        state=TaskRunState.SUCCEEDED,
        version=3,
        attempt=1,
        work_dir=str(root / run_id / id_),
        created_at=T0,
        result=result or {},
    )
    store.task_runs[id_] = tr
    return tr


def _trained(
    store: FakeStore,
    root: Path,
    tr: TaskRunRecord,
    model_id: str,
    version: int,
    shift: float,
    quality: float,
) -> ModelVersionRecord:
    """A training task run's outputs: metrics, holdout scores, importance, model with sample."""
    out = Path(tr.work_dir) / "output"
    rng = np.random.default_rng(version)
    y = (rng.random(600) < 0.3).astype(np.int64)
    score = np.clip(0.3 + quality * (y - 0.3) + rng.normal(0, 0.25, 600), 0, 1)
    _npz(out / "holdout_scores.npz", user_id=np.arange(600) // 10, y=y, score=score)
    (out / "feature_importance.json").write_text(
        json.dumps({"algorithm": "xgboost", "importance": {"spend": 0.7, "age": 0.3}})
    )
    X = np.column_stack([rng.normal(40, 10, 800), rng.normal(100 + shift, 20, 800)])
    _npz(out / "models" / "m" / "training_sample.npz", X=X, feature_names=np.asarray(FEATURES))
    metrics = {
        "ndcg": 0.4 + quality / 10,
        "auc": 0.6 + quality / 10,
        "ndcg/new_users": 0.3 + quality / 10,
        "ndcg/regulars": 0.5 + quality / 10,
        "train_rows": 800.0,
    }
    for key, value in metrics.items():
        store.metrics.append(MetricRecord(tr.id, key, value, None, T0))
    store.params[tr.id] = {
        "algorithm": "xgboost",
        "depth": tr.params["depth"],
        "eta": 0.2,
        "features": "age,spend",
    }
    store.tags[tr.id] = {"algorithm": "xgboost"}
    model = ModelVersionRecord(
        id=model_id,
        name="m",
        version=version,
        flavor="xgboost",
        path=str(out / "models" / "m"),
        digest=f"digest-{model_id}",
        signature=[{"name": n, "dtype": "float64"} for n in FEATURES],
        metrics=metrics,
        params={**tr.params, **store.params[tr.id]},
        run_id=tr.run_id,
        task_run_id=tr.id,
        created_at=T0,
    )
    store.models[model_id] = model
    return model


@pytest.fixture
def scenario(tmp_path: Path) -> tuple[FakeStore, RunRecord, ModelVersionRecord]:
    """An earlier run whose model is champion, and a run at its gate with a challenger."""
    store = FakeStore()
    old = _task_run(store, tmp_path, "old-train", "r0", "train", 0, TaskKind.EXEC, {"depth": 3})
    champion = _trained(store, tmp_path, old, "mv-champ", 1, shift=0.0, quality=0.6)
    store.alias["m"] = {"champion": champion.id}

    run = RunRecord(
        id="r1",
        flow_name="weekly",
        flow_hash=SPEC.spec_hash,
        state=RunState.RUNNING,
        version=2,
        params={"seed": 8},
        started_by="carol",
        work_dir=str(tmp_path / "r1"),
        created_at=T0,
        updated_at=T0,
        facts={
            "code": {"git_commit": "abc123", "dirty": False, "dirty_digest": None},
            "code_snapshot": "snap" * 16,
            "environment": {
                "python": "3.11.7",
                "lock_digest": "lock" * 16,
                "packages": {"numpy": "2.0", "xgboost": "3.0", "rich": "13"},
            },
            "seeds": {"seed": 8},
        },
    )
    ingest = _task_run(store, tmp_path, "t-ingest", "r1", "ingest", -1, TaskKind.DATA, {"seed": 8})
    data = Path(ingest.work_dir) / "output"
    _npz(data / "events.npz", user=np.arange(50), clicked=np.zeros(50, dtype=np.int8))
    (data / "users.csv").write_text("id,name\n1,a\n2,b\n")
    store.artifacts[ingest.id] = [
        ArtifactRecord(
            ingest.id, p.name, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size
        )
        for p in sorted(data.iterdir())
    ]
    store.metrics.append(MetricRecord(ingest.id, "rows", 50.0, None, T0))
    a = _task_run(store, tmp_path, "t-a", "r1", "train", 0, TaskKind.EXEC, {"seed": 8, "depth": 3})
    b = _task_run(store, tmp_path, "t-b", "r1", "train", 1, TaskKind.EXEC, {"seed": 8, "depth": 6})
    challenger = _trained(store, tmp_path, a, "mv-a", 2, shift=40.0, quality=0.8)
    _trained(store, tmp_path, b, "mv-b", 3, shift=40.0, quality=0.2)
    board = [
        {
            "task_run_id": tr.id,
            "label": f"train[{tr.index}]",
            "task": "train",
            "params": tr.params,
            "metrics": store.models[mid].metrics,
            "eligible": True,
            "note": "eligible",
        }
        for tr, mid in ((a, "mv-a"), (b, "mv-b"))
    ]
    _task_run(
        store,
        tmp_path,
        "t-pick",
        "r1",
        "pick",
        -1,
        TaskKind.SELECT,
        {"seed": 8},
        {
            "winner": a.id,
            "winner_label": "train[0]",
            "ranked_by": "ndcg",
            "leaderboard": board,
            "model_version_id": challenger.id,
        },
    )
    store.transitions = [
        TransitionRecord("run", "r1", None, "queued", T0, None, "carol"),
        TransitionRecord("task_run", "t-ingest", "pending", "succeeded", T0 + 5, None, None),
    ]
    return store, run, challenger


def test_report_keys_and_figures(scenario: tuple[FakeStore, RunRecord, ModelVersionRecord]) -> None:
    store, run, challenger = scenario
    r = build_report(store, run, SPEC, challenger, T0 + 60)
    assert r["format"] == FORMAT
    assert set(r) >= {
        "summary",
        "data",
        "drift",
        "leaderboards",
        "comparison",
        "figures",
        "reproducibility",
        "timeline",
        "challenger",
        "champion",
    }

    s = r["summary"]
    assert s["headline"] == {
        "metric": "ndcg",
        "objective": "max",
        "challenger": pytest.approx(0.48),
        "champion": pytest.approx(0.46),
        "delta": pytest.approx(0.02),
    }
    assert s["verdict"] == "better"
    assert "beats champion m:v1" in s["verdict_line"]
    assert s["challenger"]["label"] == "m:v2"
    assert s["challenger"]["hyperparameters"] == {"depth": 3, "eta": 0.2}
    assert s["drift_flag"] is True
    assert s["drifted_features"] == ["spend"]

    assert r["drift"]["computed"] is True
    assert r["drift"]["reference"] == "m:v1"
    assert [(f["name"], f["level"]) for f in r["drift"]["features"]] == [
        ("age", "none"),
        ("spend", "significant"),
    ]

    c = r["comparison"]
    assert c["source"] == "model_metrics"
    assert c["metric"] == "ndcg"
    assert c["challenger"] == challenger.metrics
    assert c["champion"] == store.models["mv-champ"].metrics
    assert (c["challenger_label"], c["champion_label"]) == ("m:v2", "m:v1")
    assert c["same_holdout"] is False
    assert [m["metric"] for m in c["metrics"]] == ["ndcg", "auc", "train_rows"]
    assert c["metrics"][0]["better"] is True
    assert {(x["metric"], x["slice"]) for x in c["slices"]} == {
        ("ndcg", "new_users"),
        ("ndcg", "regulars"),
    }

    [source] = r["data"]
    assert source["command"] == "python gen.py --seed 8"
    fp = source["fingerprint"]
    assert fp["files"] == 2
    assert fp["rows"] == 52
    tables = {t["path"]: t for t in fp["tables"]}
    assert [c["name"] for c in tables["events.npz"]["columns"]] == ["user", "clicked"]
    assert tables["users.csv"]["rows"] == 2

    [board] = r["leaderboards"]
    assert [row["winner"] for row in board["rows"]] == [True, False]
    assert board["rows"][0]["algorithm"] == "xgboost"

    fig = r["figures"]
    assert fig["challenger"]["roc"]["auc"] > fig["champion"]["roc"]["auc"] > 0.5
    assert len(fig["challenger"]["roc"]["points"]) <= curves.MAX_POINTS
    conf = fig["challenger"]["confusion"]
    assert conf["tp"] + conf["fp"] + conf["tn"] + conf["fn"] == 600
    assert [f["name"] for f in fig["feature_importance"]["features"]] == ["spend", "age"]
    assert [c["metric"] for c in fig["candidate_metrics"]] == ["ndcg", "auc"]

    repro = r["reproducibility"]
    assert repro["environment"]["packages"] == {"numpy": "2.0", "xgboost": "3.0"}
    assert repro["seeds"] == {"seed": 8}
    assert r["timeline"][1] == {
        "at": T0 + 5,
        "time": "2023-11-14 22:13:25 UTC",
        "entity": "task_run",
        "what": "ingest",
        "from": "pending",
        "to": "succeeded",
        "reason": None,
        "actor": None,
    }
    assert any("beats" in line for line in text_summary(r))


def test_select_comparison_is_used_when_present(
    scenario: tuple[FakeStore, RunRecord, ModelVersionRecord],
) -> None:
    store, run, challenger = scenario
    pick = store.task_runs["t-pick"]
    comparison = {
        "metric": "ndcg",
        "same_holdout": True,
        "challenger": {"ndcg": 0.5, "ndcg/new": 0.4},
        "champion": {"ndcg": 0.55},
    }
    store.task_runs["t-pick"] = TaskRunRecord(
        **{
            **{f: getattr(pick, f) for f in pick.__dataclass_fields__},
            "result": {**pick.result, "comparison": comparison},
        }
    )
    r = build_report(store, run, SPEC, challenger, T0)
    assert r["comparison"]["source"] == "select"
    assert r["comparison"]["same_holdout"] is True
    assert r["comparison"]["challenger"] == {"ndcg": 0.5, "ndcg/new": 0.4}
    assert r["comparison"]["champion"] == {"ndcg": 0.55}
    assert r["summary"]["verdict"] == "worse"
    assert "same held-out data" in r["summary"]["verdict_line"]
    assert r["comparison"]["slices"][0]["champion"] is None


def test_without_champion_drift_is_not_computed(
    scenario: tuple[FakeStore, RunRecord, ModelVersionRecord],
) -> None:
    store, run, challenger = scenario
    store.alias.clear()
    r = build_report(store, run, SPEC, challenger, T0)
    assert r["summary"]["verdict"] == "no champion"
    assert r["drift"]["computed"] is False
    assert "flag" not in r["drift"]  # unknown is not "no drift"
    assert r["summary"]["drift_flag"] is False
    assert "no champion" in r["drift"]["reason"]
    assert r["figures"]["champion"] is None
    assert all(m["champion"] is None for m in r["comparison"]["metrics"])
    assert r["comparison"]["champion"] is None


def test_without_sample_drift_says_so(
    scenario: tuple[FakeStore, RunRecord, ModelVersionRecord],
) -> None:
    store, run, challenger = scenario
    (Path(store.models["mv-champ"].path) / "training_sample.npz").unlink()
    r = build_report(store, run, SPEC, challenger, T0)
    assert r["drift"]["computed"] is False
    assert r["drift"]["reason"] == "no training_sample.npz beside m:v1"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_written_report_is_deterministic_and_self_contained(
    scenario: tuple[FakeStore, RunRecord, ModelVersionRecord], tmp_path: Path
) -> None:
    store, run, challenger = scenario
    path, digest = write_report(store, run, SPEC, challenger, tmp_path / "a", T0)
    _again, digest2 = write_report(store, run, SPEC, challenger, tmp_path / "b", T0)
    assert digest == digest2 == hashlib.sha256(path.read_bytes()).hexdigest()
    html = (tmp_path / "a" / "report.html").read_text()
    assert html == (tmp_path / "b" / "report.html").read_text()
    assert read_report(path)[1] == digest
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.tags
    assert parser.tags.count("svg") == 7  # ROC, PR, 2 confusion, importance, 2 metrics
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html


def test_html_escapes_what_the_run_logged(
    scenario: tuple[FakeStore, RunRecord, ModelVersionRecord], tmp_path: Path
) -> None:
    store, run, challenger = scenario
    store.tags["t-a"] = {"algorithm": "<script>alert(1)</script>"}
    write_report(store, run, SPEC, challenger, tmp_path, T0)
    html = (tmp_path / "report.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


# --- SVG builders -------------------------------------------------------------------------


def _svg(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox")
    return root


def test_roc_and_pr_of_a_perfect_ranking() -> None:
    y = np.array([1, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.2, 0.1])
    roc = curves.roc_curve(y, score)
    pr = curves.pr_curve(y, score)
    assert roc is not None
    assert pr is not None
    assert roc["auc"] == 1.0
    assert roc["points"] == [[0.0, 0.0], [0.0, 0.5], [0.0, 1.0], [0.5, 1.0], [1.0, 1.0]]
    assert pr["average_precision"] == 1.0
    assert curves.roc_curve([1, 1], [0.1, 0.2]) is None
    assert curves.pr_curve([0, 0], [0.1, 0.2]) is None


def test_roc_area_matches_the_rank_statistic() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.2
    score = np.round(rng.random(3000) + 0.3 * y, 2)  # ties included
    roc = curves.roc_curve(y, score)
    assert roc is not None
    pos, neg = score[y], score[~y]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert roc["auc"] == pytest.approx(pairs, abs=1e-6)
    assert len(roc["points"]) <= curves.MAX_POINTS
    assert roc["points"][0] == [0.0, 0.0]
    assert roc["points"][-1] == [1.0, 1.0]


def test_downsample_keeps_ends_and_limit() -> None:
    points = [(float(i), float(i)) for i in range(1000)]
    out = curves.downsample(points, 200)
    assert len(out) == 200
    assert out[0] == points[0]
    assert out[-1] == points[-1]
    assert curves.downsample(points[:5], 200) == points[:5]


def test_curve_svg_has_one_polyline_per_series_with_the_points() -> None:
    a = [[x / 10, x / 10] for x in range(11)]
    b = [[0.0, 0.0], [0.5, 0.9], [1.0, 1.0]]
    root = _svg(
        plots.curve_svg(
            "ROC <&>", [("one", a), ("two", b)], x_label="x", y_label="y", diagonal=True
        )
    )
    lines = root.findall(f"{SVG}polyline")
    assert [len(str(p.get("points")).split()) for p in lines] == [11, 3]
    assert root.findtext(f"{SVG}title") == "ROC <&>"


def test_confusion_svg_shows_the_four_counts() -> None:
    counts = curves.confusion_counts([1, 0, 1, 0, 1], [0.9, 0.7, 0.2, 0.1, 0.5])
    assert counts == {"threshold": 0.5, "tp": 2, "fp": 1, "fn": 1, "tn": 1}
    root = _svg(plots.confusion_svg("at 0.5", counts))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"TP 2", "FP 1", "FN 1", "TN 1"} <= set(texts)
    assert len(root.findall(f"{SVG}rect")) == 5  # background + 4 cells


def test_bar_chart_svg_has_one_bar_per_value() -> None:
    bars = [("a", 0.5), ("b<c", 0.25), ("neg", -0.1)]
    root = _svg(plots.bar_chart_svg("bars", bars, highlight="a"))
    rects = root.findall(f"{SVG}rect")[1:]
    assert len(rects) == 3
    widths = [float(str(r.get("width"))) for r in rects]
    assert widths[0] == pytest.approx(2 * widths[1], abs=0.2)
    assert rects[0].get("fill") != rects[1].get("fill")
    assert "b<c" in [t.text for t in root.iter(f"{SVG}text")]
