"""The store on real SQLite and PostgreSQL: the one door, compare-and-set, migrations."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from signoff.bootstrap.lookup import resolve_run
from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec, TaskKind, TaskSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.errors import ConflictError, InvalidTransitionError, NotFoundError
from signoff.store.migrate import alembic_config
from signoff.store.schema import metadata
from signoff.store.sql import SqlStore, open_store

SPEC = FlowSpec(name="f", tasks=(TaskSpec(name="a", kind=TaskKind.EXEC, command="true"),))


def _make_run(store: SqlStore, run_id: str = "run000000001") -> tuple[RunRecord, TaskRunRecord]:
    store.save_flow(SPEC, None)
    run = RunRecord(
        id=run_id,
        flow_name="f",
        flow_hash=SPEC.spec_hash,
        state=RunState.QUEUED,
        version=0,
        params={"k": 1},
        started_by="carol",
        work_dir="/tmp/x",
        created_at=1.0,
        updated_at=1.0,
    )
    tr = TaskRunRecord(
        id=run_id[:-1] + "t",
        run_id=run_id,
        task_name="a",
        index=-1,
        kind=TaskKind.EXEC,
        params={},
        state=TaskRunState.PENDING,
        version=0,
        attempt=0,
        work_dir="/tmp/x/a",
        created_at=1.0,
    )
    store.create_run(run, [tr])
    return run, tr


def test_migrations_produce_exactly_the_tables(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_opening_twice_is_idempotent(database_url: str) -> None:
    first = open_store(database_url)
    first.close()
    second = open_store(database_url)
    with second.engine.connect() as conn:
        version = conn.execute(sa.text("select version_num from alembic_version")).scalar()
        versions = {r[0] for r in conn.execute(sa.text("select version_num from alembic_version"))}
    second.close()
    heads = ScriptDirectory.from_config(alembic_config(second.engine)).get_heads()
    assert version in heads
    assert versions == set(heads)


def test_run_round_trip_and_prefix_lookup(store: SqlStore) -> None:
    run, tr = _make_run(store)
    assert store.get_run(run.id) == run
    assert resolve_run(store, run.id[:6]).id == run.id
    assert store.list_task_runs(run.id) == [tr]
    assert store.get_flow(SPEC.spec_hash) == SPEC
    with pytest.raises(NotFoundError):
        store.get_run("nope")
    with pytest.raises(NotFoundError):
        store.get_run(run.id[:6])  # the store matches exactly; prefixes are the edge's


@pytest.mark.parametrize("special", ["_", "%", "\\"])
def test_a_prefix_matches_its_wildcards_literally(store: SqlStore, special: str) -> None:
    literal, _ = _make_run(store, f"ab{special}c00000001")
    other, _ = _make_run(store, "abxc00000001")
    assert [r.id for r in store.runs_by_prefix(f"ab{special}", limit=5)] == [literal.id]
    assert resolve_run(store, f"ab{special}").id == literal.id
    assert [r.id for r in store.runs_by_prefix("ab", limit=5)] == sorted([literal.id, other.id])
    with pytest.raises(NotFoundError, match="ambiguous"):
        resolve_run(store, "ab")
    with pytest.raises(NotFoundError, match="no run 'ab%x'"):
        resolve_run(store, "ab%x")


def test_transition_writes_state_and_history_together(store: SqlStore) -> None:
    run, tr = _make_run(store)
    running = store.transition_run(run, RunState.RUNNING, at=2.0, reason="go", actor="carol")
    assert (running.state, running.version) == (RunState.RUNNING, 1)
    queued = store.transition_task_run(tr, TaskRunState.QUEUED, at=2.0)
    started = store.transition_task_run(
        queued, TaskRunState.RUNNING, at=3.0, changes={"started_at": 3.0}
    )
    assert started.attempt == 1
    assert store.get_task_run(tr.id) == started
    history = [(h.entity, h.from_state, h.to_state) for h in store.list_transitions(run.id)]
    assert history == [
        ("run", None, "queued"),
        ("run", "queued", "running"),
        ("task_run", "pending", "queued"),
        ("task_run", "queued", "running"),
    ]


def test_stale_version_loses_and_writes_nothing(store: SqlStore) -> None:
    run, _ = _make_run(store)
    store.transition_run(run, RunState.RUNNING, at=2.0)
    with pytest.raises(ConflictError):
        store.transition_run(run, RunState.CANCELLED, at=3.0)  # `run` is the stale view
    assert store.get_run(run.id).state is RunState.RUNNING
    assert len(store.list_transitions(run.id)) == 2


def test_invalid_transition_is_refused_before_writing(store: SqlStore) -> None:
    run, tr = _make_run(store)
    with pytest.raises(InvalidTransitionError):
        store.transition_task_run(tr, TaskRunState.SUCCEEDED, at=2.0)
    with pytest.raises(InvalidTransitionError):
        store.transition_run(run, RunState.SUCCEEDED, at=2.0)
    assert store.get_task_run(tr.id).state is TaskRunState.PENDING
    assert len(store.list_transitions(run.id)) == 1


def test_terminal_run_stays_terminal(store: SqlStore) -> None:
    run, _ = _make_run(store)
    done = store.transition_run(run, RunState.CANCELLED, at=2.0, reason="stop")
    assert done.ended_at == 2.0
    with pytest.raises(InvalidTransitionError):
        store.transition_run(done, RunState.RUNNING, at=3.0)


def test_only_one_of_two_racing_writers_wins(store: SqlStore) -> None:
    _, tr = _make_run(store)
    winner = store.transition_task_run(tr, TaskRunState.QUEUED, at=2.0)
    with pytest.raises(ConflictError):
        store.transition_task_run(tr, TaskRunState.CANCELLED, at=2.0)
    assert store.get_task_run(tr.id) == winner


def test_task_run_changes_are_limited(store: SqlStore) -> None:
    _, tr = _make_run(store)
    with pytest.raises(ValueError, match="cannot change"):
        store.transition_task_run(tr, TaskRunState.QUEUED, at=2.0, changes={"state": "x"})
    assert dataclasses.replace(tr) == store.get_task_run(tr.id)
