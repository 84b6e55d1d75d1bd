"""Flow-file keys of schedules and triggers, and the pure parts of judging trigger rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from signoff.domain.specs import Catchup, FlowSpec, Overlap, ScheduleSpec, TriggerKind
from signoff.errors import SignoffError, SpecError, SpecIssue
from signoff.scheduling.data_watch import changes, snapshot
from signoff.spec import flow_json_schema, parse_flow, parse_rules
from signoff.stats.quality import accuracy, auc, ndcg, quality_metric, rmse

TASKS = "tasks:\n  - title: t\n    command: c\n"


def issues_of(text: str) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        parse_flow(text)
    return caught.value.issues


# ------------------------------------------------------------------------ schedule
def test_schedule_mapping_with_time_zone_and_policies() -> None:
    text = (
        "flow: f\nschedule:\n  cron: '0 3 * * MON'\n  timezone: Europe/Paris\n"
        "  catchup: latest\n  overlap: supersede\n" + TASKS
    )
    spec = parse_flow(text).spec
    assert spec.schedule == "0 3 * * MON"
    assert spec.schedule_spec == ScheduleSpec(
        "0 3 * * MON", "Europe/Paris", Catchup.LATEST, Overlap.SUPERSEDE
    )
    assert FlowSpec.from_dict(json.loads(spec.canonical_json())) == spec


def test_a_plain_cron_string_means_utc_none_skip_and_keeps_its_hash() -> None:
    plain = parse_flow("flow: f\nschedule: '0 3 * * MON'\n" + TASKS).spec
    mapping = parse_flow("flow: f\nschedule: {cron: '0 3 * * MON', timezone: UTC}\n" + TASKS).spec
    assert plain.schedule_spec is None
    assert plain.schedule_rule == ScheduleSpec("0 3 * * MON")
    assert mapping == plain
    assert "schedule_spec" not in plain.to_dict()
    assert "triggers" not in plain.to_dict()


def test_cnvrg_recurring_takes_the_mapping_too() -> None:
    spec = parse_flow("flow: f\nrecurring: {cron: '0 3 * * *', catchup: all}\n" + TASKS).spec
    assert spec.schedule_rule == ScheduleSpec("0 3 * * *", catchup=Catchup.ALL)


def test_schedule_errors_have_positions() -> None:
    text = (
        "flow: f\nschedule:\n  cron: '0 3 * *'\n  timezone: Europe/Pariss\n"
        "  catchup: sometimes\n  overlpa: skip\n" + TASKS
    )
    issues = issues_of(text)
    assert [(i.line, i.column, i.field) for i in issues] == [
        (3, 9, "schedule.cron"),
        (4, 13, "schedule.timezone"),
        (5, 12, "schedule.catchup"),
        (6, 3, "schedule.overlpa"),
    ]
    assert "5 cron fields" in issues[0].message
    assert issues[1].message == "unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?)"
    assert issues[2].message == "catchup must be one of: none, latest, all; got 'sometimes'"
    assert issues[3].message == "unknown key 'overlpa' (did you mean 'overlap'?)"


@pytest.mark.parametrize(
    ("cron", "message"),
    [("99 3 * * *", "not a valid cron line"), ("0 0 31 2 *", "never fires"), ("5", "5 cron")],
)
def test_cron_lines_are_checked_with_croniter(cron: str, message: str) -> None:
    [issue] = issues_of(f"flow: f\nschedule: '{cron}'\n" + TASKS)
    assert issue.field == "schedule"
    assert message in issue.message


def test_seconds_field_is_an_advanced_option() -> None:
    assert parse_flow("flow: f\nschedule: '* * * * * */5'\n" + TASKS).spec.schedule


# ------------------------------------------------------------------------ triggers
GOOD_TRIGGERS = """flow: f
triggers:
  - {on: drift, endpoint: churn, metric: psi, threshold: 0.2, features: [tenure], min_events: 200, window: 7d}
  - {on: drift, endpoint: churn, metric: ks}
  - {on: quality, endpoint: churn, metric: accuracy, below: 0.7, min_events: 100, window: 7d}
  - {on: quality, endpoint: churn, metric: rmse, above: 2.5}
  - {on: quality, endpoint: recs, metric: ndcg, below: 0.3, group_by: user, k: 10}
  - {on: error_rate, endpoint: churn, above: 0.05, min_events: 100, window: 1h}
  - {on: data, path: data/incoming/, every: 10m}
  - {on: webhook}
"""  # noqa: E501


def test_every_kind_of_trigger_with_its_defaults() -> None:
    spec = parse_flow(GOOD_TRIGGERS + TASKS).spec
    drift, ks, acc, err_rmse, rank, errors, data, hook = spec.triggers
    assert (drift.kind, drift.features, drift.min_events, drift.window_seconds) == (
        TriggerKind.DRIFT,
        ("tenure",),
        200,
        7 * 86400,
    )
    assert (ks.metric, ks.threshold, ks.min_events, ks.every_seconds) == ("ks", 0.1, 100, 300)
    assert (acc.below, acc.above) == (0.7, None)
    assert (err_rmse.metric, err_rmse.above) == ("rmse", 2.5)
    assert (rank.group_by, rank.k) == ("user", 10)
    assert (errors.above, errors.window_seconds) == (0.05, 3600)
    assert (data.path, data.every_seconds) == ("data/incoming/", 600)
    assert hook.kind is TriggerKind.WEBHOOK
    assert len({t.id for t in spec.triggers}) == 8
    assert FlowSpec.from_dict(json.loads(spec.canonical_json())) == spec
    assert (
        drift.describe()
        == "drift psi > 0.2 on any of tenure on endpoint churn over 7d (>= 200 events)"
    )


def test_trigger_errors_have_positions_and_reasons() -> None:
    text = """flow: f
triggers:
  - {on: drift, endpoint: churn, metric: auc}
  - {on: quality, endpoint: churn, metric: rmse, below: 3}
  - {on: quality, metric: auc, below: 0.5}
  - {on: error_rate, endpoint: churn}
  - {on: data}
  - {on: webhook, path: x}
  - {on: sometimes}
  - {on: webhook}
  - {on: webhook}
"""
    issues = issues_of(text + TASKS)
    assert [(i.line, i.field) for i in issues] == [
        (3, "triggers[0].metric"),
        (4, "triggers[1].below"),
        (5, "triggers[2].endpoint"),
        (6, "triggers[3].above"),
        (7, "triggers[4].path"),
        (8, "triggers[5].path"),
        (9, "triggers[6].on"),
        (11, "triggers[8]"),
    ]
    messages = [i.message for i in issues]
    assert messages[0] == "a drift trigger measures psi or ks, not auc"
    assert "use 'above'" in messages[1]
    assert messages[2] == "a quality trigger needs an 'endpoint'"
    assert messages[5] == "key 'path' is not allowed on a trigger on 'webhook'"
    assert messages[6].startswith("unknown trigger 'sometimes'")
    assert messages[7] == "the same trigger as the one at line 10"


def test_the_json_schema_knows_the_new_keys() -> None:
    schema = flow_json_schema()
    assert set(schema["$defs"]["schedule"]["properties"]) == {
        "cron",
        "timezone",
        "catchup",
        "overlap",
    }
    assert schema["$defs"]["schedule"]["type"] == ["string", "object"]
    assert schema["properties"]["triggers"]["items"] == {"$ref": "#/$defs/trigger"}
    assert {"on", "endpoint", "metric", "threshold", "window", "path"} <= set(
        schema["$defs"]["trigger"]["properties"]
    )
    committed = Path(__file__).resolve().parents[2] / "docs" / "flow-file.schema.json"
    assert json.loads(committed.read_text()) == schema


def test_options_are_checked_by_the_same_loader() -> None:
    rule, rules = parse_rules(
        {"cron": "0 3 * * *", "timezone": "America/New_York"},
        [{"on": "quality", "endpoint": "e", "metric": "auc", "below": 0.6}],
    )
    assert rule == ScheduleSpec("0 3 * * *", "America/New_York")
    assert rules[0].below == 0.6
    with pytest.raises(SignoffError) as caught:
        parse_rules({"cron": "0 3 * *", "timezone": "Nowhere/City"}, [{"on": "drift"}])
    assert str(caught.value).splitlines() == [
        "--cron: cron must have 5 cron fields (minute hour day month weekday), or 6 with "
        "seconds last; got 4 in '0 3 * *'",
        "--timezone: unknown time zone 'Nowhere/City'",
        "--endpoint: a drift trigger needs an 'endpoint'",
    ]


# ------------------------------------------------------------------ quality metrics
def test_quality_metrics_agree_with_scikit_learn() -> None:
    from sklearn.metrics import mean_squared_error, ndcg_score, roc_auc_score

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1).round(2)  # with ties
    assert auc(list(scores), list(labels)) == pytest.approx(roc_auc_score(labels, scores))
    assert accuracy(list(scores), list(labels)) == pytest.approx(
        float(np.mean((scores >= 0.5) == labels))
    )
    values = rng.normal(size=50)
    truth = values + rng.normal(scale=0.3, size=50)
    assert rmse(list(values), list(truth)) == pytest.approx(
        float(np.sqrt(mean_squared_error(truth, values)))
    )
    rel = rng.integers(0, 4, 20)
    guess = rng.random(20)
    assert ndcg(list(guess), list(rel)) == pytest.approx(ndcg_score([rel], [guess]))
    assert ndcg(list(guess), list(rel), k=5) == pytest.approx(ndcg_score([rel], [guess], k=5))


def test_quality_metric_edge_cases() -> None:
    assert auc([0.1, 0.9], [1, 1]) is None  # one class: no AUC
    assert accuracy(["cat", "dog"], ["cat", "cat"]) == 0.5
    assert accuracy([[0.1, 0.9], [0.8, 0.2]], [1, 1]) == 0.5
    grouped = ndcg([0.9, 0.1, 0.2, 0.8], [1, 0, 0, 1], groups=["a", "a", "b", "b"])
    assert grouped == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown quality metric"):
        quality_metric("f1", [1], [1])


# ------------------------------------------------------------------------ data path
def test_data_path_fingerprint_sees_added_changed_and_removed_files(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    assert snapshot("incoming", tmp_path).files == 0
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("1")
    (folder / "sub" / "b.csv").write_text("2")
    first = snapshot("incoming/", tmp_path)
    assert first.files == 2
    assert snapshot(str(folder), Path("/elsewhere")).digest == first.digest
    (folder / "a.csv").write_text("11")
    (folder / "c.csv").write_text("3")
    (folder / "sub" / "b.csv").unlink()
    second = snapshot("incoming", tmp_path)
    assert second.digest != first.digest
    assert changes(first.entries, second.entries) == {
        "added": ["c.csv"],
        "removed": ["sub/b.csv"],
        "changed": ["a.csv"],
        "counts": {"added": 1, "removed": 1, "changed": 1},
    }


def test_a_remote_path_without_fsspec_says_what_to_install(tmp_path: Path) -> None:
    try:
        import fsspec  # noqa: F401
    except ImportError:
        with pytest.raises(SignoffError, match="needs fsspec"):
            snapshot("s3://bucket/incoming/", tmp_path)
    else:
        memory = snapshot("memory://signoff-test/incoming/", tmp_path)
        assert memory.files == 0
