"""Rows to records: the one generic mapping the store builds every record with."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from signoff.domain.states import RunState
from signoff.store import _rows as rows
from signoff.store._mapping import RecordMap, as_dict, as_tuple
from signoff.store._runs import like_prefix


@dataclass(frozen=True)
class _Thing:
    name: str
    tags: tuple[str, ...]
    extra: dict[str, object]
    on: bool


def test_fields_come_by_name_through_their_converters() -> None:
    build = RecordMap(
        _Thing, columns={"name": "thing_name"}, convert={"tags": as_tuple, "extra": as_dict}
    )
    row = {"thing_name": "a", "tags": ["x", "y"], "extra": None, "on": 1, "unused": 5}
    assert build(row) == _Thing("a", ("x", "y"), {}, 1)  # type: ignore[arg-type]


def test_a_converter_for_a_missing_field_is_refused() -> None:
    with pytest.raises(ValueError, match="no fields"):
        RecordMap(_Thing, convert={"nope": str})


def test_run_rows_become_run_records() -> None:
    row = {
        "id": "r1",
        "flow_name": "f",
        "flow_hash": "h",
        "state": "running",
        "version": 2,
        "params": {"k": 1},
        "started_by": "carol",
        "work_dir": "/w",
        "created_at": 1.0,
        "updated_at": 2.0,
        "ended_at": None,
        "reason": None,
        "facts": None,
        "lease_owner": "x",
        "lease_expires_at": 3.0,
    }
    run = rows.RUN(row)
    assert run.state is RunState.RUNNING
    assert run.facts == {}


def test_quorum_digits_read_as_numbers() -> None:
    assert rows._quorum("2") == 2
    assert rows._quorum("any") == "any"


@pytest.mark.parametrize(
    ("prefix", "pattern"),
    [("ab", "ab%"), ("a_b", "a\\_b%"), ("50%", "50\\%%"), ("a\\b", "a\\\\b%")],
)
def test_like_prefix_escapes_wildcards_and_the_escape(prefix: str, pattern: str) -> None:
    assert like_prefix(prefix) == pattern
