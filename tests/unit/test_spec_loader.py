"""The flow-file loader: both reference formats load, and every mistake is found with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.domain.specs import TaskKind
from signoff.errors import SignoffError, SpecError, SpecIssue
from signoff.spec import LoadedFlow, load_flow, parse_flow

FLOWS = Path(__file__).resolve().parents[1] / "resources" / "flows"


def errors_of(source: Path | str) -> list[SpecIssue]:
    """The issues a flow file (a Path) or flow text (a str) is refused with."""
    with pytest.raises(SpecError) as caught:
        load_flow(source) if isinstance(source, Path) else parse_flow(source)
    return caught.value.issues


def where(issues: list[SpecIssue]) -> list[tuple[int, int, str]]:
    return [(i.line, i.column, i.field) for i in issues]


# ---------------------------------------------------------------- flows that load


def test_design_example_loads_with_its_content() -> None:
    loaded = load_flow(FLOWS / "good_recsys.yaml")
    spec = loaded.spec

    assert spec.name == "weekly-recsys"
    assert spec.schedule == "0 3 * * MON"
    assert [t.name for t in spec.tasks] == [
        "ingest",
        "train-xgb",
        "train-forest",
        "pick-champion",
        "sign-off",
        "deploy",
    ]
    assert [t.kind for t in spec.tasks] == [
        TaskKind.DATA,
        TaskKind.EXEC,
        TaskKind.EXEC,
        TaskKind.SELECT,
        TaskKind.HUMAN_VALIDATION,
        TaskKind.DEPLOY,
    ]
    xgb = spec.task("train-xgb")
    assert xgb.command == "python train_xgb.py --max-depth {{ max_depth }}"
    assert [(p.key, p.values, p.is_grid) for p in xgb.params] == [("max_depth", (4, 6, 8), True)]
    assert xgb.resources.cpu == 1.0
    assert xgb.resources.gpu == 0.0
    assert len(xgb.grid()) == 3

    pick = spec.task("pick-champion")
    assert pick.command is None
    assert pick.depends_on == ("train-xgb", "train-forest")
    assert [(c.tag_key, c.objective, c.target) for c in pick.conditions] == [
        ("ndcg_at_10", "max", 0.25)
    ]

    gate = spec.task("sign-off").gate
    assert gate is not None
    assert gate.targets == ("alice", "bob")
    assert gate.quorum == "any"
    assert gate.timeout_seconds == 72 * 3600
    assert gate.allow_self_approval is False
    assert gate.require_comment_on_reject is True

    deploy = spec.task("deploy")
    assert deploy.deploy is not None
    assert deploy.deploy.endpoint == "recsys"
    assert deploy.depends_on == ("sign-off",)
    assert spec.task("ingest").depends_on == ()
    assert spec.downstream("ingest") == ("train-xgb", "train-forest")

    assert loaded.warnings == ()
    assert loaded.path == (FLOWS / "good_recsys.yaml").resolve()
    assert loaded.base_dir == FLOWS


@pytest.mark.parametrize(
    "path",
    [FLOWS / "tiny" / "flow.yaml", FLOWS.parents[2] / "examples" / "recsys" / "flow.yaml"],
    ids=["tiny", "recsys"],
)
def test_reference_flows_load_without_warnings(path: Path) -> None:
    assert load_flow(path).warnings == ()


def test_cnvrg_export_with_seed_gate_lines_loads() -> None:
    loaded = load_flow(FLOWS / "seed_literal.yaml")
    spec = loaded.spec

    assert spec.name == "churn-model"  # named by `title:`
    assert spec.description == "Train, approve, serve."
    assert spec.metadata == (("version", "1"),)
    assert [(p.key, p.values) for p in spec.params] == [("seed", (7,))]

    train = spec.task("train")
    assert [(p.key, p.values) for p in train.params] == [("lr", (0.1, 0.2))]
    assert train.env == (("OMP_NUM_THREADS", "4"),)

    approve = spec.task("approve")
    assert approve.kind is TaskKind.HUMAN_VALIDATION  # from `objective:`, no `type:`
    assert approve.params == ()  # `params: []` accepted on a gate
    assert approve.depends_on == ("train",)
    assert approve.gate is not None
    assert approve.gate.targets == ("username", "username2")
    assert approve.gate.quorum == "all"
    assert approve.gate.timeout_seconds == 2 * 86400

    serve = spec.task("serve")
    assert serve.depends_on == ("approve", "train")  # depends_on + relations, de-duplicated
    assert serve.command is None  # a deploy task's command is dropped, with a warning
    assert [(w.line, w.column, w.field) for w in loaded.warnings] == [(30, 5, "tasks[2].command")]
    assert serve.deploy is not None
    assert (serve.deploy.endpoint, serve.deploy.port) == ("churn", 8080)


def test_relations_and_depends_on_give_the_same_spec_hash() -> None:
    by_relations = load_flow(FLOWS / "good_recsys.yaml").spec
    by_depends_on = load_flow(FLOWS / "good_recsys_depends_on.yaml").spec

    assert by_relations == by_depends_on
    assert by_relations.spec_hash == by_depends_on.spec_hash


def test_parse_flow_names_text_and_uses_cwd(tmp_path: Path) -> None:
    text = (FLOWS / "good_recsys.yaml").read_text()

    loaded = parse_flow(text)
    assert isinstance(loaded, LoadedFlow)
    assert loaded.path is None
    assert loaded.base_dir == Path.cwd()
    assert parse_flow(text, base_dir=tmp_path).base_dir == tmp_path
    assert loaded.spec == load_flow(FLOWS / "good_recsys.yaml").spec


def test_comma_separated_values_split_into_numbers() -> None:
    spec = parse_flow(
        "flow: f\n"
        "tasks:\n"
        "  - title: t\n"
        "    command: run {{ lr }} {{ tag }}\n"
        "    params:\n"
        "      - key: lr\n"
        '        values: "0.1, 0.2"\n'
        "      - key: tag\n"
        '        values: "a, 3, -4, 2.5e1, true,"\n'
        "      - key: plain\n"
        "        value: '007'\n"
    ).spec
    params = {p.key: p.values for p in spec.tasks[0].params}
    assert params == {"lr": (0.1, 0.2), "tag": ("a", 3, -4, 25.0, "true"), "plain": ("007",)}


def test_empty_params_and_defaults() -> None:
    task = parse_flow(
        "flow: f\ntasks:\n  - name: t\n    command: run\n    params: []\n"
    ).spec.tasks[0]
    assert task.params == ()
    assert task.kind is TaskKind.EXEC
    assert (task.resources.cpu, task.resources.gpu, task.resources.memory_mb) == (1.0, 0.0, None)


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("30m", 1800), ("45s", 45), ("2d", 172800), ("1d12h", 129600), (3600, 3600), ("'90'", 90)],
)
def test_gate_timeouts(timeout: str | int, seconds: int) -> None:
    text = (
        "flow: f\ntasks:\n  - title: g\n    objective: human_validation\n"
        f"    target: [a]\n    timeout: {timeout}\n"
    )
    gate = parse_flow(text).spec.tasks[0].gate
    assert gate is not None
    assert gate.timeout_seconds == seconds


def test_gate_options_and_group_targets() -> None:
    text = (
        "flow: f\n"
        "tasks:\n"
        "  - title: g\n"
        "    type: human_validation\n"
        "    target: [group:ml, alice, alice]\n"
        "    quorum: 3\n"  # a group may hold many people: no count check
        "    on_timeout: reject\n"
        "    allow_self_approval: true\n"
        "    require_comment_on_reject: false\n"
    )
    gate = parse_flow(text).spec.tasks[0].gate
    assert gate is not None
    assert gate.targets == ("group:ml", "alice")
    assert gate.quorum == 3
    assert gate.allow_self_approval is True
    assert gate.require_comment_on_reject is False


def test_warnings_do_not_stop_a_flow() -> None:
    loaded = parse_flow(
        "flow: f\n"
        "tasks:\n"
        "  - title: t\n"
        "    command: run\n"
        "    params:\n"
        "      - key: max-depth\n"
        "        values: [1, 1]\n"
    )
    assert [(w.line, w.column, w.field, w.severity) for w in loaded.warnings] == [
        (6, 14, "tasks[0].params[0].key", "warning"),
        (7, 17, "tasks[0].params[0].values", "warning"),
    ]


# ---------------------------------------------------------------- errors, with their places


def test_duplicate_key_is_an_error_at_the_second_one() -> None:
    [issue] = errors_of(FLOWS / "bad_duplicate_key.yaml")
    assert (issue.line, issue.column, issue.field) == (5, 5, "tasks[0].command")
    assert issue.message == "duplicate key 'command' (first defined at line 4)"
    assert issue.file == str(FLOWS / "bad_duplicate_key.yaml")


def test_unknown_key_with_position_path_and_suggestion() -> None:
    [issue] = errors_of(FLOWS / "bad_unknown_key.yaml")
    assert (issue.line, issue.column, issue.field) == (5, 5, "tasks[0].comand")
    assert issue.message == "unknown key 'comand' (did you mean 'command'?)"
    assert str(issue).startswith(f"{FLOWS / 'bad_unknown_key.yaml'}:5:5: tasks[0].comand:")


def test_unknown_top_level_key_lists_allowed_keys() -> None:
    [issue] = errors_of("flow: f\nzzz: 1\ntasks:\n  - title: t\n    command: c\n")
    assert (issue.line, issue.column, issue.field) == (2, 1, "zzz")
    assert issue.message == (
        "unknown key 'zzz' (allowed: author, author_email, description, executor, flow, "
        "long_description, params, recurring, relations, schedule, tags, tasks, title, "
        "triggers, version)"
    )


def test_every_error_of_a_file_in_one_pass() -> None:
    issues = errors_of(FLOWS / "bad_many_errors.yaml")
    assert where(issues) == [
        (2, 11, "schedule"),
        (4, 5, "tasks[0].command"),
        (6, 5, "tasks[0].cmd"),
        (8, 11, "tasks[1].type"),
        (10, 22, "tasks[1].resources.cpu"),
        (11, 5, "tasks[2].conditions"),
        (13, 5, "tasks[2].command"),
        (14, 12, "tasks[3].title"),
        (17, 24, "relations[0].to"),
    ]
    messages = [i.message for i in issues]
    assert messages[1] == "an exec task needs a 'command'"
    assert messages[2] == "unknown key 'cmd' (did you mean 'command'?)"
    assert messages[3].startswith("unknown task type 'training'")
    assert messages[4] == "expected a number, got string"
    assert (
        messages[6]
        == "key 'command' is not allowed on a task of type 'select' (it runs inside signoff)"
    )
    assert messages[7] == "duplicate task name 'train' (first at line 7)"
    assert messages[8] == "unknown task 'nowhere'"


def test_cycle_is_named_once_at_its_first_task() -> None:
    [issue] = errors_of(FLOWS / "bad_cycle.yaml")
    assert issue.message == "cycle: a -> b -> c -> a"
    assert (issue.line, issue.column, issue.field) == (5, 5, "tasks[1]")


def test_self_dependency_is_a_cycle() -> None:
    [issue] = errors_of("flow: f\ntasks:\n  - title: a\n    command: c\n    depends_on: a\n")
    assert issue.message == "cycle: a -> a"
    assert (issue.line, issue.column) == (3, 5)


def test_unknown_references_in_depends_on_and_relations() -> None:
    issues = errors_of(FLOWS / "bad_unknown_reference.yaml")
    assert where(issues) == [(7, 26, "tasks[1].depends_on[1]"), (10, 23, "relations[1].to")]
    assert issues[0].message == "unknown task 'ingst' (did you mean 'ingest'?)"
    assert issues[1].message == "unknown task 'deploy'"


def test_gate_rules() -> None:
    issues = errors_of(FLOWS / "bad_gate.yaml")
    assert where(issues) == [
        (3, 5, "tasks[0].target"),
        (8, 17, "tasks[1].on_timeout"),
        (12, 13, "tasks[2].quorum"),
    ]
    assert issues[0].message == "a human_validation task needs at least one target"
    assert "timeouts never approve" in issues[1].message
    assert issues[2].message == "quorum 3 is more than the 2 target(s)"


@pytest.mark.parametrize("target", ["''", "' , '", "[]"])
def test_gate_with_empty_target(target: str) -> None:
    text = f"flow: f\ntasks:\n  - title: g\n    objective: human_validation\n    target: {target}\n"
    [issue] = errors_of(text)
    assert issue.message == "a human_validation task needs at least one target"
    assert (issue.line, issue.column, issue.field) == (5, 13, "tasks[0].target")


def test_bad_cron_from_file() -> None:
    [issue] = errors_of(FLOWS / "bad_cron.yaml")
    assert (issue.line, issue.column, issue.field) == (2, 11, "schedule")
    assert "5 cron fields" in issue.message


@pytest.mark.parametrize("schedule", ["'0 3 * * MON extra'", "'0 3 * * ?'", "5", "'@daily'"])
def test_bad_cron_strings(schedule: str) -> None:
    [issue] = errors_of(f"flow: f\nschedule: {schedule}\ntasks:\n  - title: t\n    command: c\n")
    assert issue.field == "schedule"


def test_cron_is_normalised() -> None:
    text = "flow: f\nschedule: ' */15  0-6 1,15 JAN-MAR *'\ntasks:\n  - title: t\n    command: c\n"
    assert parse_flow(text).spec.schedule == "*/15 0-6 1,15 JAN-MAR *"


def test_template_errors() -> None:
    issues = errors_of(FLOWS / "bad_templates.yaml")
    assert where(issues) == [(7, 14, "tasks[0].command"), (9, 14, "tasks[1].command")]
    assert issues[0].message == (
        "unknown template variable 'max_depth' (known: dataset, inputs, output_dir, run_id, task)"
    )
    assert issues[1].message.startswith("invalid template: template syntax error on line 1")


def test_yaml_syntax_error_has_a_position() -> None:
    [issue] = errors_of(FLOWS / "bad_yaml_syntax.yaml")
    assert (issue.line, issue.column) == (5, 1)
    assert issue.message.startswith("invalid YAML: expected ',' or ']'")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as caught:
        load_flow(missing)
    assert isinstance(caught.value, SignoffError)
    assert isinstance(caught.value, ValueError)
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.column) == (str(missing), 1, 1)
    assert issue.message == "flow file not found"


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    flow = tmp_path / "latin1.yaml"
    flow.write_bytes(b"flow: f\ntasks:\n  - title: caf\xe9\n")
    [issue] = errors_of(flow)
    assert (issue.line, issue.column) == (3, 15)  # the byte after 'caf'


def test_keys_of_another_task_type_are_refused() -> None:
    issues = errors_of(
        "flow: f\n"
        "tasks:\n"
        "  - title: t\n"
        "    command: c\n"
        "    conditions: [{tag_key: acc}]\n"
        "  - title: d\n"
        "    type: deploy\n"
        "    endpoint: e\n"
        "    target: alice\n"
        "  - title: g\n"
        "    objective: human_validation\n"
        "    target: alice\n"
        "    command: c\n"
    )
    assert where(issues) == [
        (5, 5, "tasks[0].conditions"),
        (9, 5, "tasks[1].target"),
        (13, 5, "tasks[2].command"),
    ]
    assert issues[0].message == "key 'conditions' is not allowed on a task of type 'exec'"


def test_deploy_endpoint_rules() -> None:
    issues = errors_of(
        "flow: f\n"
        "tasks:\n"
        "  - title: a\n"
        "    type: deploy\n"
        "  - title: b\n"
        "    type: deploy\n"
        "    endpoint: x\n"
        "    endpoint_title: y\n"
        "    port: 80\n"
    )
    assert where(issues) == [
        (3, 5, "tasks[0].endpoint"),
        (8, 5, "tasks[1].endpoint_title"),
        (9, 11, "tasks[1].port"),
    ]


def test_task_level_objective_must_be_human_validation() -> None:
    [issue] = errors_of("flow: f\ntasks:\n  - title: s\n    type: select\n    objective: max\n")
    assert (issue.line, issue.column, issue.field) == (5, 16, "tasks[0].objective")


def test_names_must_be_unique_after_slugging() -> None:
    issues = errors_of(
        "flow: f\ntasks:\n"
        "  - title: Train XGB\n    command: c\n"
        "  - name: train-xgb\n    command: c\n"
    )
    assert where(issues) == [(5, 11, "tasks[1].name")]
    assert "both become 'train_xgb'" in issues[0].message


def test_duplicate_param_keys() -> None:
    issues = errors_of(
        "flow: f\n"
        "tasks:\n"
        "  - title: t\n"
        "    command: c\n"
        "    params:\n"
        "      - {key: a, value: 1}\n"
        "      - {key: a, values: [1, 2]}\n"
    )
    assert where(issues) == [(7, 15, "tasks[0].params[1].key")]
    assert issues[0].message == "duplicate param 'a' (first at line 6)"


def test_missing_flow_name_and_tasks() -> None:
    issues = errors_of("description: nothing\n")
    assert sorted((i.line, i.column, i.field, i.message) for i in issues) == [
        (1, 1, "flow", "missing required key 'flow' (the flow name; cnvrg exports use 'title')"),
        (1, 1, "tasks", "missing required key 'tasks'"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a\n- b\n",
        "flow: x\n\ttasks: 1\n",
        "flow: !!int x\ntasks: []\n",
        "flow: 2024-01-01\ntasks: [1]\n",
        "flow: !custom x\ntasks: {}\n",
        "flow: x\ntasks: &a\n  - *a\n",
        "flow: x\x07\n",
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
        "flow: x\ntasks:\n  - title: [a]\n    depends_on: {a: 1}\n    params: [{key: k}]\n",
    ],
)
def test_never_a_raw_exception(text: str) -> None:
    issues = errors_of(text)
    assert issues
    assert all(i.line >= 1 and i.column >= 1 for i in issues)


def test_issues_are_sorted_by_position() -> None:
    issues = errors_of(FLOWS / "bad_many_errors.yaml")
    assert [(i.line, i.column) for i in issues] == sorted((i.line, i.column) for i in issues)


# ---------------------------------------------------------------- run control keys


def test_run_control_keys_fill_the_task() -> None:
    task = parse_flow(
        "flow: f\n"
        "tasks:\n"
        "  - title: t\n"
        "    description: Trains the model.\n"
        "    command: run\n"
        "    retries: 3\n"
        "    retry_delay: 1m30s\n"
        "    timeout: 2h\n"
        "    cache: true\n"
        "    output_dir: ./out//models/\n"
    ).spec.tasks[0]
    assert task.description == "Trains the model."
    assert (task.retries, task.retry_delay, task.timeout) == (3, 90.0, 7200.0)
    assert task.cache is True
    assert task.output_dir == "out/models"
    assert task.call is None  # only the Python SDK sets it


def test_run_control_defaults() -> None:
    task = parse_flow("flow: f\ntasks:\n  - {title: t, command: run}\n").spec.tasks[0]
    assert (task.retries, task.retry_delay, task.timeout, task.cache) == (0, 0.0, None, False)
    assert (task.output_dir, task.description, task.call) == (None, None, None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m", 60.0), ("0", 0.0), ("2.5", 2.5), ("'2.5'", 2.5), ("1.5s", 1.5)],
)
def test_retry_delay(text: str, seconds: float) -> None:
    task = parse_flow(f"flow: f\ntasks:\n  - {{title: t, command: c, retry_delay: {text}}}\n")
    assert task.spec.tasks[0].retry_delay == seconds


def test_a_command_timeout_and_a_gate_timeout_are_different_things() -> None:
    spec = parse_flow(
        "flow: f\ntasks:\n"
        "  - {title: t, command: c, timeout: 90}\n"
        "  - {title: g, objective: human_validation, target: a, timeout: 1.5s, depends_on: t}\n"
    ).spec
    assert spec.task("t").timeout == 90.0
    assert spec.task("t").gate is None
    gate = spec.task("g")
    assert gate.timeout is None
    assert gate.gate is not None
    assert gate.gate.timeout_seconds == 2  # whole seconds, rounded up


def test_run_control_errors_in_one_pass() -> None:
    issues = errors_of(
        "flow: f\n"
        "tasks:\n"
        "  - title: a\n"
        "    command: c\n"
        "    retries: -1\n"
        "    retry_delay: -5\n"
        "    timeout: 0\n"
        "    cache: 'yes'\n"
        "    output_dir: /abs\n"
        "  - title: b\n"
        "    command: c\n"
        "    retries: 1.5\n"
        "    output_dir: a/../../b\n"
        "  - title: c\n"
        "    command: c\n"
        "    retries: true\n"
        "    output_dir: inputs/x\n"
        "  - {title: d, command: c, output_dir: '.'}\n"
        "  - {title: e, command: c, output_dir: 'C:\\\\x'}\n"
    )
    assert where(issues) == [
        (5, 14, "tasks[0].retries"),
        (6, 18, "tasks[0].retry_delay"),
        (7, 14, "tasks[0].timeout"),
        (8, 12, "tasks[0].cache"),
        (9, 17, "tasks[0].output_dir"),
        (12, 14, "tasks[1].retries"),
        (13, 17, "tasks[1].output_dir"),
        (16, 14, "tasks[2].retries"),
        (17, 17, "tasks[2].output_dir"),
        (18, 40, "tasks[3].output_dir"),
        (19, 40, "tasks[4].output_dir"),
    ]
    messages = [i.message for i in issues]
    assert messages[0] == "retries must be a whole number, 0 or more; got -1"
    assert messages[1].startswith("retry_delay must be a duration like '30s'")
    assert messages[2] == "timeout must be positive"
    assert messages[4] == "output_dir must be a path relative to the working folder, got '/abs'"
    assert messages[6] == "output_dir must stay inside the working folder ('..' in 'a/../../b')"
    assert messages[8] == "output_dir cannot be under 'inputs': signoff writes that itself"
    assert messages[9] == "output_dir must name a folder inside the working folder, got '.'"


def test_run_control_keys_belong_to_command_tasks() -> None:
    issues = errors_of(
        "flow: f\ntasks:\n"
        "  - {title: s, type: select, conditions: [{tag_key: a}], timeout: 1h}\n"
        "  - {title: g, objective: human_validation, target: a, retries: 2}\n"
        "  - {title: d, type: deploy, endpoint: e, output_dir: out, cache: true}\n"
    )
    assert where(issues) == [
        (3, 58, "tasks[0].timeout"),
        (4, 56, "tasks[1].retries"),
        (5, 43, "tasks[2].output_dir"),
        (5, 60, "tasks[2].cache"),
    ]
    assert issues[0].message == "key 'timeout' is not allowed on a task of type 'select'"


# ---------------------------------------------------------------- flow header and templates


def test_flow_metadata_is_sorted_text() -> None:
    spec = parse_flow(
        "flow: f\n"
        "description: short\n"
        "long_description: longer\n"
        "version: 2\n"
        "author: Ann\n"
        "tags: [ranking, weekly]\n"
        "tasks:\n  - {title: t, command: c}\n"
    ).spec
    assert spec.description == "short"
    assert spec.metadata == (
        ("author", "Ann"),
        ("long_description", "longer"),
        ("tags", "ranking,weekly"),
        ("version", "2"),
    )


def test_param_values_may_use_the_builtin_variables_only() -> None:
    issues = errors_of(
        "flow: f\n"
        "params:\n"
        "  - {key: out, value: '{{ output_dir }}/x'}\n"
        "  - {key: bad, value: '{{ nope }}'}\n"
        "tasks:\n"
        "  - title: t\n"
        "    command: c {{ out }}\n"
        "    params:\n"
        "      - {key: a, values: ['{{ run_id }}', '{{ out }}']}\n"
        "      - {key: b, value: '{% if %}'}\n"
    )
    assert where(issues) == [
        (4, 23, "params[1].value"),
        (9, 43, "tasks[0].params[0].values[1]"),
        (10, 25, "tasks[0].params[1].value"),
    ]
    assert issues[0].message == (
        "unknown template variable 'nope' (param values may use: inputs, output_dir, run_id, task)"
    )
    assert issues[2].message.startswith("invalid template: template syntax error")


@pytest.mark.parametrize(
    "text",
    [
        "flow: f\ntasks:\n  - title:\n    command: c\n",
        "flow:\ntasks:\n  - {title: a, command: c}\n",
        "title: ~\ntasks:\n  - {name: a, command: c}\n",
    ],
)
def test_empty_names_are_errors_not_crashes(text: str) -> None:
    [issue] = errors_of(text)
    assert issue.message in ("the task name must not be empty", "the flow name must not be empty")
    assert (issue.line, issue.column) in ((3, 5), (1, 1))


def test_warnings_carry_their_place_and_never_stop_a_flow() -> None:
    loaded = parse_flow(
        "flow: f\ntasks:\n"
        "  - {title: a, command: c, image: 'python:3.11'}\n"
        "  - {title: b, command: c}\n"
        "relations:\n  - {from: A, to: b}\n"
    )
    assert loaded.spec.task("b").depends_on == ("a",)
    assert [(w.file, w.line, w.column, w.field, w.severity) for w in loaded.warnings] == [
        ("<flow>", 3, 28, "tasks[0].image", "warning"),
        ("<flow>", 6, 12, "relations[0].from", "warning"),
    ]
    assert str(loaded.warnings[0]).startswith("<flow>:3:28: tasks[0].image: 'image' is accepted")


def test_an_empty_endpoint_is_missing() -> None:
    [issue] = errors_of("flow: f\ntasks:\n  - title: d\n    type: deploy\n    endpoint:\n")
    assert (issue.line, issue.column, issue.field) == (5, 5, "tasks[0].endpoint")
    assert issue.message == "a deploy task needs an 'endpoint' (or 'endpoint_title')"


def test_params_that_are_not_a_list_are_one_error() -> None:
    [issue] = errors_of("flow: f\ntasks:\n  - {title: t, command: c, params: 1}\n")
    assert (issue.line, issue.column, issue.field) == (3, 36, "tasks[0].params")
