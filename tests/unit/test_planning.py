"""plan_run: readiness, fan-out/fan-in, skipping and how a run ends; and the flow spec it reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.domain.planning import plan_run
from signoff.domain.records import TaskRunRecord
from signoff.domain.specs import (
    ConditionSpec,
    DeploySpec,
    FlowSpec,
    GatePolicy,
    ParamSpec,
    Resources,
    TaskKind,
    TaskSpec,
)
from signoff.domain.states import RunState, TaskRunState

T = TaskRunState


def exec_task(name: str, *depends_on: str, params: tuple[ParamSpec, ...] = ()) -> TaskSpec:
    return TaskSpec(name, TaskKind.EXEC, command=f"python {name}.py", depends_on=depends_on,
                    params=params)  # fmt: skip


def gate_task(name: str, *depends_on: str) -> TaskSpec:
    return TaskSpec(
        name, TaskKind.HUMAN_VALIDATION, depends_on=depends_on, gate=GatePolicy(("alice",))
    )


def task_runs_of(
    spec: FlowSpec, **states: TaskRunState | list[TaskRunState]
) -> list[TaskRunRecord]:
    """One record per grid combination of every task; states by task name (pending otherwise)."""
    out: list[TaskRunRecord] = []
    for task in spec.tasks:
        combos = task.grid()
        given_states = states.get(task.name, T.PENDING)
        per_run = given_states if isinstance(given_states, list) else [given_states] * len(combos)
        assert len(per_run) == len(combos)
        for index, (combo, state) in enumerate(zip(combos, per_run, strict=True)):
            out.append(
                TaskRunRecord(
                    id=f"{task.name}-{index}",
                    run_id="run-1",
                    task_name=task.name,
                    index=index,
                    kind=task.kind,
                    params=dict(combo),
                    state=state,
                    version=1,
                    attempt=1,
                    work_dir=f"/tmp/run-1/{task.name}-{index}",
                    created_at=0.0,
                )
            )
    return out


def ids(records: tuple[TaskRunRecord, ...]) -> list[str]:
    return [r.id for r in records]


CHAIN = FlowSpec("chain", (exec_task("a"), exec_task("b", "a"), exec_task("c", "b")))

GRID = (ParamSpec("depth", (3, 6, 9)),)
FAN = FlowSpec(
    "fan",
    (
        exec_task("ingest"),
        exec_task("train", "ingest", params=GRID),
        TaskSpec("pick", TaskKind.SELECT, depends_on=("train",)),
        gate_task("review", "pick"),
        TaskSpec("deploy", TaskKind.DEPLOY, depends_on=("review",), deploy=DeploySpec("recs")),
    ),
)


# ---------------------------------------------------------------- readiness on a chain


def test_chain_only_the_root_is_ready_at_start() -> None:
    plan = plan_run(CHAIN, task_runs_of(CHAIN))
    assert ids(plan.ready) == ["a-0"]
    assert plan.skip == ()
    assert plan.active == 0
    assert plan.waiting_gates == ()
    assert plan.outcome is None


def test_chain_nothing_ready_while_the_upstream_runs() -> None:
    for state in (T.QUEUED, T.RUNNING):
        plan = plan_run(CHAIN, task_runs_of(CHAIN, a=state))
        assert plan.ready == ()
        assert plan.skip == ()
        assert plan.active == 1
        assert plan.outcome is None


def test_chain_next_task_ready_after_success() -> None:
    plan = plan_run(CHAIN, task_runs_of(CHAIN, a=T.SUCCEEDED))
    assert ids(plan.ready) == ["b-0"]
    plan = plan_run(CHAIN, task_runs_of(CHAIN, a=T.SUCCEEDED, b=T.SUCCEEDED))
    assert ids(plan.ready) == ["c-0"]
    assert plan.outcome is None


def test_chain_all_succeeded_ends_succeeded() -> None:
    plan = plan_run(CHAIN, task_runs_of(CHAIN, a=T.SUCCEEDED, b=T.SUCCEEDED, c=T.SUCCEEDED))
    assert plan.ready == ()
    assert plan.skip == ()
    assert plan.outcome is RunState.SUCCEEDED


def test_retrying_task_run_keeps_the_run_going() -> None:
    # running -> queued is a retry: queued counts as active and blocks downstream
    plan = plan_run(CHAIN, task_runs_of(CHAIN, a=T.SUCCEEDED, b=T.QUEUED))
    assert plan.active == 1
    assert plan.ready == ()
    assert plan.outcome is None


# ---------------------------------------------------------------- fan-out / fan-in


def test_grid_fans_out_one_task_run_per_combination() -> None:
    trs = task_runs_of(FAN, ingest=T.SUCCEEDED)
    plan = plan_run(FAN, trs)
    assert ids(plan.ready) == ["train-0", "train-1", "train-2"]
    assert [r.params for r in plan.ready] == [{"depth": 3}, {"depth": 6}, {"depth": 9}]


def test_fan_in_waits_for_every_grid_run() -> None:
    partial = [T.SUCCEEDED, T.SUCCEEDED, T.RUNNING]
    plan = plan_run(FAN, task_runs_of(FAN, ingest=T.SUCCEEDED, train=partial))
    assert plan.ready == ()
    assert plan.skip == ()
    assert plan.active == 1
    assert plan.outcome is None

    done = [T.SUCCEEDED] * 3
    plan = plan_run(FAN, task_runs_of(FAN, ingest=T.SUCCEEDED, train=done))
    assert ids(plan.ready) == ["pick-0"]


def test_fan_in_is_skipped_when_one_grid_run_failed() -> None:
    trs = task_runs_of(FAN, ingest=T.SUCCEEDED, train=[T.SUCCEEDED, T.FAILED, T.SUCCEEDED])
    plan = plan_run(FAN, trs)
    assert ids(plan.skip) == ["pick-0"]
    assert plan.ready == ()


def test_waiting_gate_is_reported_and_blocks_the_run_end() -> None:
    trs = task_runs_of(
        FAN, ingest=T.SUCCEEDED, train=T.SUCCEEDED, pick=T.SUCCEEDED, review=T.WAITING_FOR_APPROVAL
    )
    plan = plan_run(FAN, trs)
    assert ids(plan.waiting_gates) == ["review-0"]
    assert plan.ready == ()
    assert plan.skip == ()
    assert plan.active == 0
    assert plan.outcome is None


def test_approved_gate_lets_the_deploy_run() -> None:
    trs = task_runs_of(
        FAN, ingest=T.SUCCEEDED, train=T.SUCCEEDED, pick=T.SUCCEEDED, review=T.APPROVED
    )
    plan = plan_run(FAN, trs)
    assert ids(plan.ready) == ["deploy-0"]
    assert plan.waiting_gates == ()


# ---------------------------------------------------------------- skipping


@pytest.mark.parametrize("upstream", [T.FAILED, T.REJECTED, T.EXPIRED, T.CANCELLED, T.SKIPPED])
def test_downstream_of_an_unsuccessful_end_is_skipped(upstream: TaskRunState) -> None:
    plan = plan_run(CHAIN, task_runs_of(CHAIN, a=T.SUCCEEDED, b=upstream))
    assert ids(plan.skip) == ["c-0"]
    assert plan.ready == ()


def test_rejected_gate_skips_the_deploy_and_the_run_ends_rejected() -> None:
    trs = task_runs_of(
        FAN, ingest=T.SUCCEEDED, train=T.SUCCEEDED, pick=T.SUCCEEDED, review=T.REJECTED
    )
    plan = plan_run(FAN, trs)
    assert ids(plan.skip) == ["deploy-0"]
    # the task run about to be skipped counts as terminal: the run ends in the same step
    assert plan.outcome is RunState.REJECTED


def test_skipping_walks_down_one_level_per_plan() -> None:
    plan = plan_run(CHAIN, task_runs_of(CHAIN, a=T.FAILED))
    assert ids(plan.skip) == ["b-0"]
    # c still waits on b, which is pending in the store until the engine skips it
    assert plan.outcome is None

    plan = plan_run(CHAIN, task_runs_of(CHAIN, a=T.FAILED, b=T.SKIPPED))
    assert ids(plan.skip) == ["c-0"]
    assert plan.outcome is RunState.FAILED

    plan = plan_run(CHAIN, task_runs_of(CHAIN, a=T.FAILED, b=T.SKIPPED, c=T.SKIPPED))
    assert plan.skip == ()
    assert plan.outcome is RunState.FAILED


# ---------------------------------------------------------------- how a run ends

PARALLEL = FlowSpec("parallel", tuple(exec_task(n) for n in ("p", "q", "r", "s", "u")))

PRECEDENCE = [
    (T.FAILED, RunState.FAILED),
    (T.REJECTED, RunState.REJECTED),
    (T.EXPIRED, RunState.EXPIRED),
    (T.CANCELLED, RunState.CANCELLED),
    (T.SUCCEEDED, RunState.SUCCEEDED),
]


def test_outcome_precedence_failed_rejected_expired_cancelled_succeeded() -> None:
    # each step drops the strongest state left; the outcome follows the next one down
    for drop in range(len(PRECEDENCE)):
        present = [state for state, _ in PRECEDENCE[drop:]]
        padded = present + [T.SUCCEEDED] * (5 - len(present))
        states = dict(zip(("p", "q", "r", "s", "u"), reversed(padded), strict=True))
        plan = plan_run(PARALLEL, task_runs_of(PARALLEL, **states))
        assert plan.outcome is PRECEDENCE[drop][1], present


@pytest.mark.parametrize(("strong", "weak"), [
    (T.FAILED, T.REJECTED), (T.FAILED, T.EXPIRED), (T.FAILED, T.CANCELLED),
    (T.REJECTED, T.EXPIRED), (T.REJECTED, T.CANCELLED), (T.EXPIRED, T.CANCELLED),
])  # fmt: skip
def test_outcome_pairwise_precedence(strong: TaskRunState, weak: TaskRunState) -> None:
    expected = {state: outcome for state, outcome in PRECEDENCE}[strong]
    for a, b in ((strong, weak), (weak, strong)):
        spec = FlowSpec("two", (exec_task("x"), exec_task("y")))
        plan = plan_run(spec, task_runs_of(spec, x=a, y=b))
        assert plan.outcome is expected


def test_skipped_and_approved_alone_count_as_success() -> None:
    spec = FlowSpec("g", (gate_task("gate"), exec_task("x")))
    plan = plan_run(spec, task_runs_of(spec, gate=T.APPROVED, x=T.SKIPPED))
    assert plan.outcome is RunState.SUCCEEDED


@pytest.mark.parametrize("state", [T.PENDING, T.QUEUED, T.RUNNING, T.WAITING_FOR_APPROVAL])
def test_no_outcome_while_anything_is_non_terminal(state: TaskRunState) -> None:
    spec = FlowSpec("two", (exec_task("x"), exec_task("y")))
    if state is T.WAITING_FOR_APPROVAL:
        spec = FlowSpec("two", (exec_task("x"), gate_task("y")))
    plan = plan_run(spec, task_runs_of(spec, x=T.FAILED, y=state))
    assert plan.outcome is None


# ---------------------------------------------------------------- the flow spec


def test_grid_is_the_cartesian_product_in_a_stable_order() -> None:
    task = exec_task("t", params=(ParamSpec("a", (1, 2)), ParamSpec("b", ("x", "y"))))
    assert task.grid() == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_grid_overrides_pin_one_value() -> None:
    task = exec_task("t", params=(ParamSpec("a", (1, 2)), ParamSpec("b", ("x", "y"))))
    assert task.grid({"a": 5}) == [{"a": 5, "b": "x"}, {"a": 5, "b": "y"}]
    assert task.grid({"unknown": 1}) == task.grid()


def test_task_without_params_has_one_empty_combination() -> None:
    assert exec_task("t").grid() == [{}]


def _rich_flow() -> FlowSpec:
    return FlowSpec(
        name="weekly",
        tasks=(
            TaskSpec(
                "train",
                TaskKind.EXEC,
                command="python train.py --d {{ depth }}",
                params=(ParamSpec("depth", (3, 6)), ParamSpec("lr", (0.1,))),
                resources=Resources(cpu=2.0, gpu=0.5, memory_mb=512),
                env=(("SEED", "7"),),
            ),
            TaskSpec(
                "pick",
                TaskKind.SELECT,
                depends_on=("train",),
                conditions=(ConditionSpec("auc", "max", 0.8), ConditionSpec("loss", "min")),
            ),
            TaskSpec(
                "review",
                TaskKind.HUMAN_VALIDATION,
                depends_on=("pick",),
                gate=GatePolicy(("alice", "group:leads"), quorum=2, allow_self_approval=True),
            ),
            TaskSpec(
                "ship", TaskKind.DEPLOY, depends_on=("review",), deploy=DeploySpec("recs", 8081)
            ),
        ),
        params=(ParamSpec("region", ("eu",)),),
        schedule="0 3 * * MON",
        description="the weekly flow",
    )


def test_spec_round_trips_through_dict_and_json() -> None:
    spec = _rich_flow()
    assert FlowSpec.from_dict(spec.to_dict()) == spec
    stored: dict[str, Any] = json.loads(spec.canonical_json())
    again = FlowSpec.from_dict(stored)
    assert again == spec
    assert again.spec_hash == spec.spec_hash


def test_spec_hash_is_a_sha256_that_changes_with_content() -> None:
    spec = _rich_flow()
    assert len(spec.spec_hash) == 64
    assert int(spec.spec_hash, 16) >= 0
    assert _rich_flow().spec_hash == spec.spec_hash
    changed = FlowSpec(spec.name, spec.tasks, spec.params, "0 4 * * MON", spec.description)
    assert changed.spec_hash != spec.spec_hash


def test_downstream_lists_direct_dependents() -> None:
    assert FAN.downstream("train") == ("pick",)
    assert FAN.downstream("deploy") == ()
    with pytest.raises(KeyError):
        FAN.task("nope")


_values = st.one_of(
    st.integers(-5, 5), st.text("abc", min_size=1, max_size=3), st.booleans(), st.floats(0, 1)
)


@given(
    keys=st.lists(st.text("xyz", min_size=1, max_size=2), unique=True, max_size=3),
    data=st.data(),
)
def test_any_param_grid_round_trips(keys: list[str], data: st.DataObject) -> None:
    params = tuple(
        ParamSpec(k, tuple(data.draw(st.lists(_values, min_size=1, max_size=3)))) for k in keys
    )
    spec = FlowSpec("f", (exec_task("t", params=params),))
    again = FlowSpec.from_dict(json.loads(spec.canonical_json()))
    assert again == spec
    assert again.spec_hash == spec.spec_hash
    expected_runs = 1
    for p in params:
        expected_runs *= len(p.values)
    assert len(spec.tasks[0].grid()) == expected_runs
