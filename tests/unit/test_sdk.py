"""Flows in Python: compiled by the flow-file validator, equal to their YAML twins."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

import signoff
from signoff import Flow, task
from signoff.domain.specs import ConditionSpec, ParamSpec, Resources, TaskKind
from signoff.errors import ExecutionError, SpecError, SpecIssue
from signoff.sdk.flow import TaskRef
from signoff.sdk.tasks import Task
from signoff.spec import flow_json_schema, load_flow, parse_flow

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "tests" / "resources" / "sdk"
HERE = __file__


@pytest.fixture(scope="module")
def sdk_tasks() -> Iterator[ModuleType]:
    """The resource module of Python tasks, imported by name like the executor does."""
    sys.path.insert(0, str(SDK))
    try:
        yield importlib.import_module("sdk_tasks")
    finally:
        sys.path.remove(str(SDK))


def errors_of(flow: Flow) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        flow.to_spec()
    return caught.value.issues


def line_of(marker: str) -> int:
    """The line of this file holding ``marker`` (issues point at Python lines)."""
    lines = Path(HERE).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line and "line_of" not in line)


# ---------------------------------------------------------------- task functions


@task
def fit_model(max_depth: int, seed: int = 0) -> int:
    return max_depth * 10 + seed


@task(name="train-xgb", kind="data", params={"max_depth": [3, 6], "lr": 0.1}, retries=2)
def train_xgb(max_depth: int, lr: float) -> None:
    pass


def plain_function() -> None:
    pass


def main_function() -> None:
    pass


main_function.__module__ = "__main__"  # as if defined in the script being run


def _make_nested() -> object:
    def inner() -> None:
        pass

    return inner


# ---------------------------------------------------------------- the decorator


def test_a_task_is_still_the_function() -> None:
    assert isinstance(fit_model, Task)
    assert fit_model(max_depth=3, seed=1) == 31
    assert fit_model.__wrapped_task__.__name__ == "fit_model"
    assert fit_model.__name__ == "fit_model"
    assert fit_model.__module__ == __name__
    assert list(inspect.signature(fit_model).parameters) == ["max_depth", "seed"]
    assert fit_model.name == "fit-model"
    assert train_xgb.name == "train-xgb"
    assert repr(fit_model) == f"<signoff task 'fit-model': {__name__}:fit_model>"


def test_lambdas_and_nested_functions_are_refused_where_they_are_marked() -> None:
    with pytest.raises(SpecError) as caught:
        task(lambda: None)
    issue = caught.value.issues[0]
    assert "a lambda cannot be a task" in issue.message
    assert (issue.file, issue.line, issue.field) == (HERE, line_of("task(lambda: None)"), "call")

    with pytest.raises(SpecError, match="defined inside another function") as caught:
        task(name="x")(_make_nested())  # type: ignore[arg-type]
    assert caught.value.issues[0].line == line_of("def inner() -> None:")
    assert "define it at the top level of a module" in str(caught.value)


# ---------------------------------------------------------------- compiling


def test_python_tasks_compile_to_calls_with_names_and_options() -> None:
    flow = Flow("names")
    fit = flow.add(fit_model)
    xgb = flow.add(train_xgb, after=fit)
    flow.add(plain_function, after=[fit, "train-xgb"], retry_delay=timedelta(seconds=90))
    flow.add("some.pkg.module:prepare_data", name=None, cache=True, resources={"cpu": 2})
    flow.add(fit_model, name="fit-again", params={"max_depth": 5}, kind="data")
    assert (fit, xgb) == (TaskRef("fit-model"), TaskRef("train-xgb"))
    assert str(fit) == "fit-model"
    assert flow.task_names == (
        "fit-model",
        "train-xgb",
        "plain-function",
        "prepare-data",
        "fit-again",
    )

    spec = flow.to_spec()
    by_name = {t.name: t for t in spec.tasks}
    assert [t.call for t in spec.tasks] == [
        f"{__name__}:fit_model",
        f"{__name__}:train_xgb",
        f"{__name__}:plain_function",
        "some.pkg.module:prepare_data",
        f"{__name__}:fit_model",
    ]
    assert all(t.command is None for t in spec.tasks)
    xgb_spec = by_name["train-xgb"]
    assert xgb_spec.kind is TaskKind.DATA
    assert xgb_spec.params == (ParamSpec("max_depth", (3, 6)), ParamSpec("lr", (0.1,)))
    assert xgb_spec.retries == 2
    assert xgb_spec.depends_on == ("fit-model",)
    assert by_name["plain-function"].depends_on == ("fit-model", "train-xgb")
    assert by_name["plain-function"].retry_delay == 90.0
    assert by_name["prepare-data"].cache is True
    assert by_name["prepare-data"].resources == Resources(cpu=2.0)
    # options given to add() override the decorator's
    again = by_name["fit-again"]
    assert (again.kind, again.params) == (TaskKind.DATA, (ParamSpec("max_depth", (5,)),))


def test_a_list_is_a_grid_and_a_scalar_a_plain_param() -> None:
    flow = Flow("grid", params={"seed": 7, "name": "a, b"})
    flow.command(
        "t",
        "run {{ depth }} {{ lr }} {{ name }} {{ flag }}",
        params={"depth": [3, 6], "lr": (0.1, 0.2), "flag": True},
    )
    spec = flow.to_spec()
    assert spec.params == (ParamSpec("seed", (7,)), ParamSpec("name", ("a, b",)))  # never split
    assert spec.tasks[0].params == (
        ParamSpec("depth", (3, 6)),
        ParamSpec("lr", (0.1, 0.2)),
        ParamSpec("flag", (True,)),
    )
    assert len(spec.tasks[0].grid()) == 4


def test_every_task_type_and_its_keys() -> None:
    flow = Flow(
        "all-kinds",
        params={"seed": 7},
        schedule="0 3 * * MON",
        description="Everything.",
        tags=["ranking", "weekly"],
        version="1.10",
        author="Ann Lee",
    )
    data = flow.command(
        "ingest",
        "python ingest.py --seed {{ seed }}",
        kind="data",
        env={"OMP_NUM_THREADS": 4, "DEBUG": False},
        timeout="1h30m",
        retries=1,
        retry_delay=10,
        output_dir="./out//data/",
        resources={"cpu": 2, "memory": "4Gi"},
    )
    pick = flow.select(
        "pick",
        after=[data],
        conditions=[ConditionSpec("auc", "max", 0.6), {"tag_key": "latency", "objective": "min"}],
    )
    gate = flow.gate(
        "sign-off",
        target=["alice", "group:leads"],
        after=pick,
        quorum=2,
        timeout=timedelta(days=2),
        allow_self_approval=True,
        require_comment_on_reject=False,
    )
    flow.deploy("deploy", endpoint="recsys", after=gate, port=8080)
    spec = flow.to_spec()
    assert spec.schedule == "0 3 * * MON"
    assert spec.description == "Everything."
    assert spec.metadata == (("author", "Ann Lee"), ("tags", "ranking,weekly"), ("version", "1.10"))
    ingest, select, sign_off, deploy = spec.tasks
    assert ingest.kind is TaskKind.DATA
    assert ingest.env == (("DEBUG", "false"), ("OMP_NUM_THREADS", "4"))
    assert (ingest.timeout, ingest.retry_delay, ingest.output_dir) == (5400.0, 10.0, "out/data")
    assert ingest.resources == Resources(cpu=2.0, memory_mb=4096)
    assert select.conditions == (ConditionSpec("auc", "max", 0.6), ConditionSpec("latency", "min"))
    assert sign_off.gate is not None
    assert sign_off.gate.targets == ("alice", "group:leads")
    assert (sign_off.gate.quorum, sign_off.gate.timeout_seconds) == (2, 172800)
    assert sign_off.gate.allow_self_approval is True
    assert sign_off.gate.require_comment_on_reject is False
    assert deploy.deploy is not None
    assert (deploy.deploy.endpoint, deploy.deploy.port) == ("recsys", 8080)
    assert deploy.depends_on == ("sign-off",)


# ---------------------------------------------------------------- one validator


def test_validation_errors_are_the_loaders_at_the_python_lines() -> None:
    flow = Flow("broken", schedule="every monday")  # MARK flow
    a = flow.command("a", "echo {{ sead }}", after=["c"])  # MARK a
    b = flow.add(fit_model, name="b", after=[a])
    flow.command("c", "echo c", after=[b])
    flow.command("d", "echo d", after=["trian"])  # MARK d
    flow.gate("gate", target="alice", quorum=3, after="d")  # MARK gate
    issues = errors_of(flow)
    found = [(i.line, i.field, i.message) for i in issues]
    assert all(i.file == HERE for i in issues)
    assert (line_of("MARK flow"), "schedule") in [(line, f) for line, f, _ in found]
    assert (line_of("MARK a"), "tasks[0]", "cycle: a -> b -> c -> a") in found
    assert (
        line_of("MARK a"),
        "tasks[0].command",
        "unknown template variable 'sead' (known: inputs, output_dir, run_id, task)",
    ) in found
    assert (line_of("MARK d"), "tasks[3].depends_on[0]", "unknown task 'trian'") in found
    assert (
        line_of("MARK gate"),
        "tasks[4].quorum",
        "quorum 3 is more than the 1 target(s)",
    ) in found
    # the same checks as a flow file, every problem in one pass, in flow order
    assert [i.field.split(".")[0] for i in issues] == [
        "schedule",
        "tasks[0]",
        "tasks[0]",
        "tasks[3]",
        "tasks[4]",
    ]
    assert str(issues[0]).startswith(f"{HERE}:{line_of('MARK flow')}:")


def test_duplicate_names_and_unknown_keys_values_come_from_the_validator() -> None:
    flow = Flow("dupes")
    flow.add(fit_model)
    flow.add(fit_model)
    flow.command("bad", "echo", resources={"cpus": 2}, retries=-1)
    messages = [i.message for i in errors_of(flow)]
    assert any(m.startswith("duplicate task name 'fit-model'") for m in messages)
    assert "unknown key 'cpus' (did you mean 'cpu'?)" in messages
    assert any("retries" in m for m in messages)


def test_warnings_point_at_python_lines_too() -> None:
    flow = Flow("warned")
    flow.command("t", "run {{ x }}", params={"x": [1, 1]})  # MARK warn
    warnings = flow.validate().warnings
    assert [(w.line, w.field, w.severity) for w in warnings] == [
        (line_of("MARK warn"), "tasks[0].params[0].values", "warning")
    ]


def test_refused_functions_name_the_reason() -> None:
    flow = Flow("refused")
    with pytest.raises(SpecError, match="a lambda cannot be a task") as caught:
        flow.add(lambda: None)
    assert caught.value.issues[0].field == "tasks[0].call"
    with pytest.raises(SpecError, match=r"'_make_nested\.<locals>\.inner' is defined inside"):
        flow.add(_make_nested())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a task is a function"):
        flow.add(42)  # type: ignore[arg-type]
    assert flow.task_names == ()


def test_functions_of_main_only_run_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = Flow("main")
    flow.add(fit_model)
    flow.add(main_function, after="fit-model")
    with pytest.raises(SpecError) as caught:
        flow.to_yaml()
    (issue,) = caught.value.issues
    assert issue.field == "tasks[1].call"
    assert "is defined in __main__ (the script being run)" in issue.message
    assert "run the flow in this process with flow.run()" in issue.message
    # a script run with `python -m package.module` is importable by that name
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", SimpleNamespace(name="pkg.flows"))
    assert flow.to_spec().tasks[1].call == "pkg.flows:main_function"


def test_values_a_flow_file_cannot_hold_are_a_type_error() -> None:
    flow = Flow("types")
    flow.command("t", "run", params={"when": [object()]})
    with pytest.raises(TypeError, match=r"tasks\[0\]\.params\[0\]\.values\[0\]: a value of type"):
        flow.to_spec()


def test_a_function_that_cannot_be_loaded_stops_the_run_before_it_exists(tmp_path: Path) -> None:
    flow = Flow("missing")
    flow.add("no_such_module_for_signoff:fit")
    with pytest.raises(ExecutionError, match="task 'fit': cannot load no_such_module_for_signoff"):
        flow.run(home=tmp_path / "home")
    assert not (tmp_path / "home").exists()


# ---------------------------------------------------------------- twins


def test_the_recsys_example_and_its_python_twin_have_the_same_hash() -> None:
    loaded = load_flow(ROOT / "examples" / "recsys" / "flow.yaml")
    flow = Flow(
        "weekly-recsys",
        description=(
            "Ingest interaction data, preprocess it, train XGBoost and a random forest over "
            "small grids, pick the champion by NDCG@10 on held-out users, ask alice or bob to "
            "approve, then serve it.\n"
        ),
        schedule="0 3 * * MON",
        params={"n_users": 2000, "n_items": 400, "seed": 7},
    )
    ingest = flow.command(
        "ingest",
        "python generate.py --users {{ n_users }} --items {{ n_items }} --seed {{ seed }}",
        kind="data",
    )
    prep = flow.command("preprocess", "python preprocess.py --seed {{ seed }}", after=[ingest])
    xgb = flow.command(
        "train-xgb",
        "python train_xgb.py --max-depth {{ max_depth }} --seed {{ seed }}",
        after=[prep],
        params={"max_depth": [3, 6]},
    )
    forest = flow.command(
        "train-forest",
        "python train_forest.py --n-estimators {{ n_estimators }} --seed {{ seed }}",
        after=[prep],
        params={"n_estimators": [40, 120]},
    )
    pick = flow.select(
        "pick-champion",
        after=[xgb, forest],
        conditions=[
            {"tag_key": "ndcg_at_10", "objective": "max", "target": 0.3},
            {"tag_key": "auc", "objective": "max", "target": 0.6},
        ],
        compare_to="champion",
        evaluate="python evaluate.py --model {{ model }} --digest {{ digest }}",
        min_improvement=0.0,
    )
    gate = flow.gate("sign-off", target="alice,bob", after=[pick])
    flow.deploy("deploy", endpoint="recsys", after=[gate])

    assert flow.to_spec() == loaded.spec
    assert flow.to_spec().spec_hash == loaded.spec.spec_hash


def test_a_flow_mixing_calls_and_its_yaml_twin_have_the_same_hash(sdk_tasks: ModuleType) -> None:
    flow = sdk_tasks.review_flow()
    twin = load_flow(SDK / "review_flow.yaml").spec
    spec = flow.to_spec()
    assert spec == twin
    assert spec.spec_hash == twin.spec_hash
    assert [t.call for t in spec.tasks] == [
        "sdk_tasks:prepare",
        "sdk_tasks:train_model",
        None,
        None,
        "sdk_tasks:publish",
    ]
    assert flow.base_dir == SDK


def test_to_yaml_round_trips_through_the_loader(sdk_tasks: ModuleType) -> None:
    flow = sdk_tasks.review_flow()
    text = flow.to_yaml()
    assert "call: sdk_tasks:train_model" in text
    assert "- {key: quality, values: [2, 7, 5]}" in text
    assert parse_flow(text).spec == flow.to_spec()
    odd = Flow("odd values", params={"n": "7", "t": "yes", "e": 1e-20, "big": 1e20})
    odd.command("x", "echo '{{ n }}: {{ t }}' # {{ e }} {{ big }}", params={"p": "{{ inputs }}/a"})
    assert parse_flow(odd.to_yaml()).spec == odd.to_spec()
    assert odd.to_spec().params == (
        ParamSpec("n", ("7",)),
        ParamSpec("t", ("yes",)),
        ParamSpec("e", (1e-20,)),
        ParamSpec("big", (1e20,)),
    )


# ---------------------------------------------------------------- `call:` in flow files


def test_call_in_a_flow_file_is_the_specs_call() -> None:
    spec = parse_flow(
        "flow: f\ntasks:\n"
        "  - {title: a, type: data, call: pkg.mod:prepare, retries: 1, cache: true}\n"
        "  - {title: b, call: 'pkg:Trainer.fit', params: [{key: k, values: [1, 2]}]}\n"
    ).spec
    assert [(t.call, t.command, t.kind) for t in spec.tasks] == [
        ("pkg.mod:prepare", None, TaskKind.DATA),
        ("pkg:Trainer.fit", None, TaskKind.EXEC),
    ]


@pytest.mark.parametrize(
    ("task_text", "expected"),
    [
        (
            "{title: t, command: run, call: 'a:b'}",
            (3, 30, "tasks[0].call", "use either 'command' (a shell command) or 'call'"),
        ),
        (
            "{title: t, call: 'a:b', input: run}",
            (3, 29, "tasks[0].input", "use either 'input' (a shell command) or 'call'"),
        ),
        (
            "{title: t, call: 'pkg.mod'}",
            (3, 22, "tasks[0].call", "call must be 'package.module:function' (dotted"),
        ),
        (
            "{title: t, call: 'm:outer.<locals>.f'}",
            (3, 22, "tasks[0].call", "call must be 'package.module:function'"),
        ),
        ("{title: t, call: 3}", (3, 22, "tasks[0].call", "call must be 'package.module:function'")),
        (
            "{title: t, type: select, call: 'a:b', conditions: [{tag_key: x}]}",
            (3, 30, "tasks[0].call", "key 'call' is not allowed on a task of type 'select'"),
        ),
        (
            "{title: t, call: 'a:b', timeout: 5s}",
            (3, 29, "tasks[0].timeout", "key 'timeout' is not allowed on a task with 'call'"),
        ),
        (
            "{title: t, call: 'a:b', env: {A: 1}}",
            (3, 29, "tasks[0].env", "key 'env' is not allowed on a task with 'call'"),
        ),
        ("{title: t, type: data}", (3, 5, "tasks[0].command", "a data task needs a 'command'")),
    ],
)
def test_call_mistakes_are_found_at_their_place(
    task_text: str, expected: tuple[int, int, str, str]
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_flow(f"flow: f\ntasks:\n  - {task_text}\n")
    (issue,) = caught.value.issues
    line, column, field, message = expected
    assert (issue.line, issue.column, issue.field) == (line, column, field)
    assert issue.message.startswith(message), issue.message


def test_the_json_schema_knows_call() -> None:
    task_schema = flow_json_schema()["$defs"]["task"]
    pattern = task_schema["properties"]["call"]["pattern"]
    assert re.search(pattern, "pkg.mod:Trainer.fit")
    assert not re.search(pattern, "pkg.mod")
    assert not re.search(pattern, "m:f.<locals>.g")
    assert {"not": {"required": ["command", "call"]}} in task_schema["allOf"]


def test_flow_and_task_are_exported_lazily() -> None:
    assert signoff.Flow is Flow
    assert signoff.task is task
