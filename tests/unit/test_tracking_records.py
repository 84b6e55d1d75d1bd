"""What a task logged: the records file the task API writes, and cnvrg's stdout convention."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import signoff
from signoff.tracking.records import LoggedOutputs, parse_records, parse_stdout


@pytest.fixture
def records_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the task API at a records file and an output folder in a temp folder."""
    path = tmp_path / "work" / "records.jsonl"
    path.parent.mkdir()
    monkeypatch.setenv("SIGNOFF_RECORDS_FILE", str(path))
    monkeypatch.setenv("SIGNOFF_OUTPUT_DIR", str(tmp_path / "work" / "output"))
    return path


# ---------------------------------------------------------------- the records file


def test_records_written_by_the_task_api_are_read_back(records_file: Path) -> None:
    signoff.log_param("max_depth", 6)
    signoff.log_param("features", ["age", "clicks"])
    signoff.log_metric("auc", 0.91)
    for step, loss in enumerate([0.9, 0.5, 0.25]):
        signoff.log_metric("loss", loss, step=step)
    signoff.log_tag("algo", "xgboost")
    signoff.log_tag("seed", 7)  # type: ignore[arg-type]  # a non-str tag is stored as text

    out = parse_records(records_file)

    assert out.problems == []
    assert out.params == {"max_depth": 6, "features": ["age", "clicks"]}
    assert [(k, v, s) for k, v, s, _ in out.metrics] == [
        ("auc", 0.91, None),
        ("loss", 0.9, 0),
        ("loss", 0.5, 1),
        ("loss", 0.25, 2),
    ]
    times = [t for _, _, _, t in out.metrics]
    assert times == sorted(times)
    assert all(t > 0 for t in times)
    assert out.tags == {"algo": "xgboost", "seed": "7"}
    assert out.final_metrics() == {"auc": 0.91, "loss": 0.25}
    assert out.models == []


def test_log_model_writes_the_model_and_a_record(records_file: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), [0.0, 1.0, 2.0])
    folder = signoff.log_model(model, "recs", input_example={"a": [0.0, 1.0], "b": [1.0, 0.0]})

    assert folder == records_file.parent / "output" / "models" / "recs"
    assert (folder / "signoff-model.json").is_file()
    out = parse_records(records_file)
    assert out.problems == []
    assert len(out.models) == 1
    record = out.models[0]
    assert (record["kind"], record["name"], record["path"], record["flavor"]) == (
        "model",
        "recs",
        "models/recs",
        "sklearn",
    )


def test_params_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNOFF_PARAMS", json.dumps({"depth": 6, "lr": 0.1}))
    assert signoff.params() == {"depth": 6, "lr": 0.1}
    assert signoff.param("depth") == 6
    assert signoff.param("missing", "fallback") == "fallback"
    monkeypatch.delenv("SIGNOFF_PARAMS")
    assert signoff.params() == {}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan"])
def test_log_metric_refuses_a_non_finite_value(records_file: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="finite"):
        signoff.log_metric("auc", bad)  # type: ignore[arg-type]
    assert not records_file.exists()


def test_log_metric_refuses_a_non_number(records_file: Path) -> None:
    with pytest.raises(ValueError):
        signoff.log_metric("auc", "high")  # type: ignore[arg-type]
    assert not records_file.exists()


def test_corrupt_lines_are_reported_and_good_lines_kept(records_file: Path) -> None:
    signoff.log_metric("auc", 0.8)
    with records_file.open("a", encoding="utf-8") as f:
        f.write('{"kind": "metric", "key": "loss", "val\n')  # a line cut short by a crash
        f.write("\n")  # blank lines are not problems
        f.write('{"kind": "metric", "key": "loss"}\n')  # no value
        f.write('{"kind": "sparkle", "key": "x"}\n')
        f.write("[1, 2]\n")
    signoff.log_tag("after", "corruption")

    out = parse_records(records_file)

    assert out.final_metrics() == {"auc": 0.8}
    assert out.tags == {"after": "corruption"}
    assert len(out.problems) == 4
    assert [p.split(":")[0] for p in out.problems] == [
        "records line 2",
        "records line 4",
        "records line 5",
        "records line 6",
    ]
    assert "sparkle" in out.problems[2]


def test_missing_records_file_is_empty(tmp_path: Path) -> None:
    out = parse_records(tmp_path / "nothing.jsonl")
    assert out == LoggedOutputs()


# ---------------------------------------------------------------- cnvrg stdout


def test_cnvrg_numeric_tags_are_metrics_and_text_tags_are_tags() -> None:
    lines = [
        "epoch 1 done",
        "cnvrg_tag_accuracy: 0.93",
        "cnvrg_tag_n_rows: 1200",
        "cnvrg_tag_model: xgboost",
        "  cnvrg_tag_note:  trained on eu data  ",
        "cnvrg_tag_weird: nan",
    ]
    out = parse_stdout(lines, at=42.0)
    assert out.metrics == [("accuracy", 0.93, None, 42.0), ("n_rows", 1200.0, None, 42.0)]
    assert out.tags == {"model": "xgboost", "note": "trained on eu data", "weird": "nan"}
    assert out.problems == []


def test_cnvrg_linechart_points_get_steps_from_zero() -> None:
    lines = [
        "cnvrg_linechart_loss value: 0.9",
        "cnvrg_linechart_auc value: 0.6",
        "cnvrg_linechart_loss value: 0.5",
        "noise in between",
        "cnvrg_linechart_loss value: 2.5e-1",
        "cnvrg_linechart_loss value: nan",  # not finite: dropped, takes no step
    ]
    out = parse_stdout(lines, at=1.0)
    assert [(k, v, s) for k, v, s, _ in out.metrics if k == "loss"] == [
        ("loss", 0.9, 0),
        ("loss", 0.5, 1),
        ("loss", 0.25, 2),
    ]
    assert [(k, v, s) for k, v, s, _ in out.metrics if k == "auc"] == [("auc", 0.6, 0)]
    assert out.tags == {}


def test_stdout_adds_to_what_the_records_file_held(records_file: Path) -> None:
    signoff.log_metric("auc", 0.7)
    signoff.log_tag("algo", "forest")
    logged = parse_records(records_file)
    same = parse_stdout(["cnvrg_tag_auc: 0.75", "cnvrg_tag_stage: final"], 9.0, into=logged)
    assert same is logged
    assert logged.final_metrics() == {"auc": 0.75}
    assert logged.tags == {"algo": "forest", "stage": "final"}


@pytest.mark.parametrize("raw", ["-", ".", "1e", "1.2.3", "e5"])
def test_malformed_linechart_value_does_not_break_parsing(raw: str) -> None:
    """A task's own output must never crash ingestion (design §6.6: bad input, clear answer).

    These values match the linechart pattern's character class but are not numbers.
    """
    lines = [f"cnvrg_linechart_loss value: {raw}", "cnvrg_linechart_loss value: 0.5"]
    out = parse_stdout(lines, at=1.0)
    assert [(k, v) for k, v, _, _ in out.metrics] == [("loss", 0.5)]
