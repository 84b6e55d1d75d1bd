"""cnvrg.io exports and blueprints load as they are; what is not acted on is warned, in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.domain.specs import ParamSpec, Resources, TaskKind
from signoff.errors import SpecError, SpecIssue
from signoff.spec import LoadedFlow, load_flow, parse_flow

CNVRG = Path(__file__).resolve().parents[1] / "resources" / "flows" / "cnvrg"


def errors_of(text: str) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        parse_flow(text)
    return caught.value.issues


def where(issues: list[SpecIssue] | tuple[SpecIssue, ...]) -> list[tuple[int, int, str]]:
    return [(i.line, i.column, i.field) for i in issues]


def task(body: str, *, name: str = "t", extra: str = "") -> str:
    """A one-task flow; ``body`` is the task's keys, indented by four spaces."""
    return f"flow: f\ntasks:\n  - title: {name}\n{body}{extra}"


# ---------------------------------------------------------------- the blueprint fixture


@pytest.fixture(scope="module")
def blueprint() -> LoadedFlow:
    return load_flow(CNVRG / "blueprint_scene_classification.yaml")


def test_blueprint_header_becomes_name_description_and_metadata(blueprint: LoadedFlow) -> None:
    spec = blueprint.spec
    assert spec.name == "Scene Classification Train"
    assert spec.description == "Train a scene classifier on your own images and deploy it as an API"
    assert spec.metadata == (
        ("author", "cnvrg"),
        ("author_email", "info@cnvrg.io"),
        (
            "long_description",
            "Fetch labelled images from S3, fine-tune a ResNet50 on them and serve the trained "
            "model as an endpoint that classifies new images.",
        ),
        ("tags", "training,computer vision"),
        ("version", "1.0.0"),
    )


def test_blueprint_tasks(blueprint: LoadedFlow) -> None:
    spec = blueprint.spec
    s3, train, inference = spec.tasks
    assert [t.kind for t in spec.tasks] == [TaskKind.EXEC, TaskKind.EXEC, TaskKind.DEPLOY]
    assert s3.command == "python s3-connector.py"
    assert s3.resources == Resources(cpu=3.5, gpu=0.0, memory_mb=8 * 1024)  # memory in GB
    assert train.resources == Resources(cpu=3.5, gpu=1.0, memory_mb=7680)
    assert train.output_dir == "output"
    assert train.depends_on == ("S3 Connector",)
    assert train.params == (
        ParamSpec("train_dir", ("{{ inputs }}/s3_connector/scene_data/",)),
        ParamSpec("epochs", ("5",)),
        ParamSpec("batch_size", (32, 64)),
    )
    assert inference.depends_on == ("Train",)  # `to: inference` found the task `Inference`
    assert inference.deploy is not None
    assert inference.deploy.endpoint == "scene-classifier"
    # a deploy task runs no command: its requirements are warned about and dropped
    assert (inference.command, inference.params, inference.resources) == (None, (), Resources())


def test_blueprint_warnings_name_every_key_not_acted_on(blueprint: LoadedFlow) -> None:
    warnings = blueprint.warnings
    assert all(w.severity == "warning" for w in warnings)
    assert where(warnings) == [
        (21, 5, "tasks[0].library"),
        (22, 5, "tasks[0].library_version"),
        (32, 5, "tasks[0].image"),
        (33, 5, "tasks[0].language"),
        (36, 14, "tasks[0].params[0].key"),
        (40, 14, "tasks[0].params[1].key"),
        (44, 14, "tasks[0].params[2].key"),
        (55, 5, "tasks[1].library"),
        (56, 5, "tasks[1].library_version"),
        (66, 5, "tasks[1].image"),
        (67, 5, "tasks[1].language"),
        (89, 5, "tasks[2].library"),
        (90, 5, "tasks[2].library_version"),
        (94, 5, "tasks[2].requirements"),
        (100, 5, "tasks[2].image"),
        (101, 5, "tasks[2].language"),
        (106, 5, "tasks[2].file_name"),
        (107, 5, "tasks[2].function_name"),
        (110, 5, "tasks[2].input_example"),
        (112, 5, "tasks[2].input_schema"),
        (120, 9, "relations[1].to"),
    ]
    by_field = {w.field: w.message for w in warnings}
    assert by_field["tasks[0].image"] == (
        "'image' is accepted but not acted on: no container runtime is in use; "
        "the command runs in the executor's environment"
    )
    assert by_field["tasks[0].params[0].key"] == (
        "param 'endpoint' is not in the command: cnvrg appends params as '--endpoint <value>', "
        "signoff does not (write '--endpoint {{ endpoint }}' in the command, "
        "or read SIGNOFF_PARAM_ENDPOINT)"
    )
    assert by_field["relations[1].to"] == (
        "'inference' is taken as task 'Inference' (the names differ only in case, spaces, "
        "dashes or underscores); write the task's name exactly"
    )
    # empty or default values ask for nothing: hpu: 0, prep_file: '', accept_files: false,
    # output_schema: {} and kind: webservice are not warned about
    quiet = ("hpu", "prep_file", "prep_function", "accept_files", "output_schema", "kind")
    assert not any(w.field.endswith(quiet) for w in warnings)


# ---------------------------------------------------------------- an export and its twin


def test_export_and_native_forms_are_the_same_spec() -> None:
    export = load_flow(CNVRG / "flow_export_churn.yaml")
    native = load_flow(CNVRG / "flow_export_churn_native.yaml")

    assert export.spec == native.spec
    assert export.spec.spec_hash == native.spec.spec_hash
    assert native.warnings == ()
    assert where(export.warnings) == [
        (9, 5, "tasks[0].computes"),
        (14, 5, "tasks[0].git_branch"),
        (24, 5, "tasks[1].computes"),
        (30, 5, "tasks[1].git_branch"),
        (64, 12, "relations[0].from"),
    ]
    spec = export.spec
    assert spec.schedule == "0 2 * * 1"  # from `recurring`
    train = spec.task("Train Model")
    assert train.command == (
        "python train.py --data {{ inputs }}/fetch_data/churn.csv --lr {{ lr }} --trees {{ trees }}"
    )
    assert train.resources.memory_mb == 8192  # "8Gi"
    assert spec.task("Fetch Data").resources.memory_mb == 4096  # 4 (GB)
    assert spec.task("Approve").gate is not None


# ---------------------------------------------------------------- every error, in one pass


def test_every_cnvrg_error_in_one_pass() -> None:
    with pytest.raises(SpecError) as caught:
        load_flow(CNVRG / "bad_cnvrg_export.yaml")
    issues = caught.value.issues
    assert where(issues) == [
        (2, 1, "flow"),
        (4, 1, "recurring"),
        (5, 7, "tags"),
        (9, 14, "tasks[0].command"),
        (10, 5, "tasks[0].input"),
        (11, 36, "tasks[0].requirements.memory"),
        (12, 5, "tasks[0].resources"),
        (13, 17, "tasks[0].output_dir"),
        (15, 12, "tasks[1].input"),
        (16, 14, "tasks[1].retries"),
        (17, 18, "tasks[1].retry_delay"),
        (18, 14, "tasks[1].timeout"),
        (19, 12, "tasks[1].cache"),
        (20, 15, "tasks[1].computes"),
        (21, 5, "tasks[1].dataset"),
        (22, 12, "tasks[2].title"),
        (25, 14, "tasks[3].command"),
        (29, 18, "tasks[3].params[0].values[0]"),
        (33, 12, "relations[2].from"),
    ]
    messages = [i.message for i in issues]
    assert messages[1] == "use either 'schedule' or 'recurring' (cnvrg's name for it), not both"
    assert (
        messages[3]
        == "'/input/warm_cache' names no upstream task of 'Fetch': it has no upstream tasks"
    )
    assert messages[4] == "use either 'command' or 'input' (cnvrg's name for the command), not both"
    assert messages[6] == "use either 'resources' or 'requirements' (cnvrg's name for it), not both"
    assert messages[8] == (
        "'/input/evaluate' names no upstream task of 'train-xgb': "
        "'evaluate' is not directly upstream of it (add a relation from it)"
    )
    assert messages[14].startswith("unknown key 'dataset'")  # unknown keys stay errors
    assert messages[16] == (
        "'/input/train_xgbb' names no upstream task of 'evaluate' "
        "(did you mean '/input/train_xgb'?)"
    )
    assert messages[18] == "'TRAIN_XGB' could name any of the tasks 'train-xgb', 'Train XGB'"


# ---------------------------------------------------------------- relation endpoints


def test_exact_relation_names_give_no_warning() -> None:
    loaded = parse_flow(
        "flow: f\ntasks:\n  - {title: Fetch Data, command: a}\n  - {title: b, command: b}\n"
        "relations:\n  - {from: Fetch Data, to: b}\n"
    )
    assert loaded.warnings == ()
    assert loaded.spec.task("b").depends_on == ("Fetch Data",)


@pytest.mark.parametrize("spelling", ["fetch-data", "FETCH_DATA", "fetch data", " Fetch  Data "])
def test_loose_relation_names_are_found_with_a_warning(spelling: str) -> None:
    loaded = parse_flow(
        "flow: f\ntasks:\n  - {title: Fetch Data, command: a}\n  - {title: b, command: b}\n"
        f"relations:\n  - {{from: '{spelling}', to: B}}\n"
    )
    assert loaded.spec.task("b").depends_on == ("Fetch Data",)
    assert [(w.line, w.column, w.field) for w in loaded.warnings] == [
        (6, 12, "relations[0].from"),
        (6, 20 + len(spelling), "relations[0].to"),
    ]
    assert f"'{spelling}' is taken as task 'Fetch Data'" in loaded.warnings[0].message
    assert "'B' is taken as task 'b'" in loaded.warnings[1].message


def test_loose_matching_never_guesses_between_two_tasks() -> None:
    issues = errors_of(
        "flow: f\ntasks:\n  - {title: Train XGB, command: a}\n  - {title: train-xgb, command: b}\n"
        "  - {title: c, command: c}\nrelations:\n  - {from: train_xgb, to: c}\n"
    )
    assert where(issues) == [(4, 13, "tasks[1].title"), (7, 12, "relations[0].from")]
    assert issues[1].message == "'train_xgb' could name any of the tasks 'Train XGB', 'train-xgb'"


def test_depends_on_stays_exact() -> None:
    [issue] = errors_of(
        "flow: f\ntasks:\n  - {title: Fetch Data, command: a}\n"
        "  - {title: b, command: b, depends_on: fetch data}\n"
    )
    assert (issue.line, issue.column, issue.field) == (4, 40, "tasks[1].depends_on")
    assert issue.message == "unknown task 'fetch data' (did you mean 'Fetch Data'?)"


# ---------------------------------------------------------------- /input/<slug> paths

_TWO = "flow: f\ntasks:\n  - title: Fetch Data\n    command: fetch\n  - title: train\n"


def test_input_paths_become_the_inputs_folder() -> None:
    spec = parse_flow(
        _TWO + "    depends_on: Fetch Data\n"
        "    command: train --data /input/fetch_data/x.csv --cfg=/input/fetch_data --n {{ n }}\n"
        "    params:\n"
        "      - {key: n, values: [1]}\n"
        "      - {key: src, values: ['/input/fetch_data/a', 3, '\"/input/fetch_data\"']}\n"
        "      - {key: one, value: /input/fetch_data/b}\n"
    ).spec
    train = spec.task("train")
    assert train.command == (
        "train --data {{ inputs }}/fetch_data/x.csv --cfg={{ inputs }}/fetch_data --n {{ n }}"
    )
    assert train.params[1:] == (
        ParamSpec("src", ("{{ inputs }}/fetch_data/a", 3, '"{{ inputs }}/fetch_data"')),
        ParamSpec("one", ("{{ inputs }}/fetch_data/b",)),
    )


@pytest.mark.parametrize(
    "command",
    [
        "train /input/model.pkl",  # a file directly under /input is not a task folder
        "train $HOME/input/fetch_data",
        "train ./input/fetch_data /data/input/fetch_data s3://b/input/fetch_data",
        "train /inputs/fetch_data /input",
    ],
)
def test_other_paths_are_left_alone(command: str) -> None:
    spec = parse_flow(_TWO + f"    depends_on: Fetch Data\n    command: {command}\n").spec
    assert spec.task("train").command == command


def test_unknown_input_slug_is_an_error_at_its_value() -> None:
    issues = errors_of(
        _TWO + "    depends_on: Fetch Data\n"
        "    command: train /input/fetch-data/x /input/nothing /input/nothing/again\n"
        "    params:\n"
        "      - key: p\n"
        "        values:\n"
        "          - ok\n"
        "          - /input/train/x\n"
    )
    assert where(issues) == [
        (7, 14, "tasks[1].command"),
        (7, 14, "tasks[1].command"),
        (12, 13, "tasks[1].params[0].values[1]"),
    ]
    assert [i.message for i in issues] == [
        "'/input/fetch-data' names no upstream task of 'train' (did you mean '/input/fetch_data'?)",
        "'/input/nothing' names no upstream task of 'train' (its upstream folders: fetch_data)",
        "'/input/train' names no upstream task of 'train' (its upstream folders: fetch_data)",
    ]


def test_a_broken_reference_does_not_cascade_into_input_errors() -> None:
    [issue] = errors_of(_TWO + "    depends_on: Fetch Dat\n    command: train /input/fetch_data\n")
    assert issue.message == "unknown task 'Fetch Dat' (did you mean 'Fetch Data'?)"


def test_a_grid_upstream_has_one_folder_per_task_run() -> None:
    loaded = parse_flow(
        "flow: f\ntasks:\n"
        "  - title: prep\n    command: prep {{ k }}\n    params: [{key: k, values: [1, 2, 3]}]\n"
        "  - title: train\n    depends_on: prep\n    command: train /input/prep/0 /input/prep\n"
    )
    [warning] = loaded.warnings
    assert (warning.line, warning.column, warning.field) == (8, 14, "tasks[1].command")
    assert warning.message == (
        "'/input/prep' holds one folder per task run of 'prep' (a grid of 3): "
        "'/input/prep/0/' to '/input/prep/2/'"
    )
    assert loaded.spec.task("train").command == "train {{ inputs }}/prep/0 {{ inputs }}/prep"


# ---------------------------------------------------------------- task keys


def test_input_is_the_command() -> None:
    spec = parse_flow(task("    type: exec\n    input: python3 train.py\n")).spec
    assert spec.tasks[0].command == "python3 train.py"


def test_a_deploy_task_needs_no_command() -> None:
    loaded = parse_flow(task("    type: deploy\n    endpoint_title: e\n    kind: webservice\n"))
    assert loaded.warnings == ()
    assert loaded.spec.tasks[0].deploy is not None


@pytest.mark.parametrize(
    ("requirements", "memory_mb"),
    [
        ("4", 4096),
        ("0.5", 512),
        ("'4Gi'", 4096),
        ("512Mi", 512),
        ("'2 GB'", 2048),
        ("1Ti", 1 << 20),
    ],
)
def test_requirements_memory(requirements: str, memory_mb: int) -> None:
    text = task(f"    input: c\n    requirements: {{cpu: 2, gpu: 1, memory: {requirements}}}\n")
    assert parse_flow(text).spec.tasks[0].resources == Resources(2.0, 1.0, memory_mb)


@pytest.mark.parametrize(("memory", "memory_mb"), [("512", 512), ("2Gi", 2048), ("1.5G", 1536)])
def test_resources_memory_is_in_mb_or_a_size(memory: str, memory_mb: int) -> None:
    text = task(f"    command: c\n    resources: {{memory: {memory}}}\n")
    assert parse_flow(text).spec.tasks[0].resources.memory_mb == memory_mb


@pytest.mark.parametrize("memory", ["0", "-1", "lots", "4Pi", "'4 Gi B'", ".inf", "true"])
def test_bad_memory(memory: str) -> None:
    [issue] = errors_of(task(f"    command: c\n    requirements:\n      memory: {memory}\n"))
    assert (issue.line, issue.column, issue.field) == (6, 15, "tasks[0].requirements.memory")


def test_hpu_and_computes_warn_only_when_set() -> None:
    loaded = parse_flow(
        task("    command: c\n    computes: [medium]\n    requirements: {hpu: 1}\n")
        + "  - {title: u, command: c, computes: [], requirements: {hpu: 0}}\n"
    )
    assert [(w.line, w.column, w.field) for w in loaded.warnings] == [
        (5, 5, "tasks[0].computes"),
        (6, 20, "tasks[0].requirements.hpu"),
    ]
    assert loaded.warnings[1].message == (
        "'hpu' is accepted but not acted on: the executor acts on cpu, gpu and memory, not on HPUs"
    )


def test_every_deploy_key_not_acted_on_is_warned() -> None:
    loaded = parse_flow(
        task(
            "    type: deploy\n"
            "    endpoint: e\n"
            "    kind: batch\n"
            "    command: python serve.py\n"
            "    file_name: predict.py\n"
            "    function_name: predict\n"
            "    prep_file: prep.py\n"
            "    prep_function: prep\n"
            "    accept_files: true\n"
            "    input_example: {x: 1}\n"
            "    input_schema: {x: number}\n"
            "    output_schema: {y: number}\n"
            "    env: {A: b}\n"
            "    params: [{key: p, value: 1}]\n"
        )
    )
    fields = [w.field.removeprefix("tasks[0].") for w in loaded.warnings]
    assert fields == [
        "kind",
        "command",
        "file_name",
        "function_name",
        "prep_file",
        "prep_function",
        "accept_files",
        "input_example",
        "input_schema",
        "output_schema",
        "env",
        "params",
    ]
    assert [w.line for w in loaded.warnings] == list(range(6, 18))
    assert loaded.warnings[0].message == (
        "'kind: batch' is accepted but not acted on: signoff serves the approved model with "
        "its own server, as a web service (kind: webservice)"
    )
    deploy = loaded.spec.tasks[0]
    assert (deploy.command, deploy.params, deploy.env) == (None, (), ())


def test_condition_keys_of_cnvrg() -> None:
    loaded = parse_flow(
        task(
            "    type: select\n"
            "    conditions:\n"
            "      - {tag_key: acc, task: '', value: ''}\n"
            "      - tag_key: loss\n"
            "        objective: min\n"
            "        task: train\n"
            "        value: 0.3\n"
        )
    )
    assert [(w.line, w.column, w.field) for w in loaded.warnings] == [
        (9, 9, "tasks[0].conditions[1].task"),
        (10, 9, "tasks[0].conditions[1].value"),
    ]
    assert loaded.warnings[0].message.startswith("'task' is accepted but not acted on")
    conditions = loaded.spec.tasks[0].conditions
    assert [(c.tag_key, c.objective) for c in conditions] == [("acc", "max"), ("loss", "min")]


def test_empty_conditions_and_params_are_accepted_on_any_type() -> None:
    loaded = parse_flow(task("    command: c\n    params: []\n    conditions: []\n"))
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image", "cnvrg:v5.0"),
        ("language", "python3"),
        ("library", "s3-connector"),
        ("library_version", "1.0.0"),
        ("git_branch", "master"),
        ("git_commit", "a1b2c3d"),
        ("computes", "[medium, large]"),
    ],
)
def test_each_run_key_not_acted_on_is_warned(key: str, value: str) -> None:
    loaded = parse_flow(task(f"    command: c\n    {key}: {value}\n"))
    [warning] = loaded.warnings
    assert (warning.line, warning.column, warning.field) == (5, 5, f"tasks[0].{key}")
    assert warning.message.startswith(f"'{key}' is accepted but not acted on: ")
    assert warning.severity == "warning"


def test_cnvrg_keys_on_a_gate_are_errors_not_warnings() -> None:
    [issue] = errors_of(task("    objective: human_validation\n    target: a\n    image: x\n"))
    assert issue.message == "key 'image' is not allowed on a task of type 'human_validation'"


# ---------------------------------------------------------------- flow header


def test_header_metadata_keeps_what_the_file_wrote() -> None:
    spec = parse_flow(
        "title: f\nversion: 1.10\nauthor: me\nauthor_email: me@example.com\n"
        "long_description: ''\ntags: []\ntasks:\n  - {title: t, command: c}\n"
    ).spec
    assert spec.metadata == (
        ("author", "me"),
        ("author_email", "me@example.com"),
        ("version", "1.10"),
    )


def test_recurring_is_the_schedule() -> None:
    spec = parse_flow("flow: f\nrecurring: '0  4 * * *'\ntasks:\n  - {title: t, command: c}\n")
    assert spec.spec.schedule == "0 4 * * *"


def test_bad_recurring_names_its_key() -> None:
    [issue] = errors_of("flow: f\nrecurring: daily\ntasks:\n  - {title: t, command: c}\n")
    assert (issue.line, issue.column, issue.field) == (2, 12, "recurring")
    assert issue.message.startswith("recurring must have 5 cron fields")
