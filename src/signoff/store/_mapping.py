"""Rows to records: one generic mapping from a table row to a frozen dataclass, by field name.

A :class:`RecordMap` reads each field of the record from the column of the same name (or the
one ``columns`` names) and passes it through the field's converter, if it has one (JSON
columns to dicts and tuples, strings to enums, SQLite's integers to booleans).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Row

__all__ = ["RecordMap", "as_dict", "as_list", "as_tuple"]

R = TypeVar("R")
Converter = Callable[[Any], Any]


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object column (NULL reads as an empty dict)."""
    return dict(value or {})


def as_list(value: Any) -> list[Any]:
    """A JSON array column (NULL reads as an empty list)."""
    return list(value or [])


def as_tuple(value: Any) -> tuple[Any, ...]:
    """A JSON array column kept as a tuple in the record."""
    return tuple(value or ())


class RecordMap(Generic[R]):
    """Builds records of one dataclass type from rows (or row mappings)."""

    def __init__(
        self,
        record: type[R],
        *,
        convert: Mapping[str, Converter] | None = None,
        columns: Mapping[str, str] | None = None,
    ) -> None:
        if not dataclasses.is_dataclass(record):
            raise TypeError(f"{record!r} is not a dataclass")
        names = [f.name for f in dataclasses.fields(record)]
        unknown = set(convert or {}) | set(columns or {})
        if unknown - set(names):
            raise ValueError(f"{record.__name__} has no fields {sorted(unknown - set(names))}")
        self._record = record
        self._plan = tuple(
            (name, (columns or {}).get(name, name), (convert or {}).get(name)) for name in names
        )

    def __call__(self, row: Row[Any] | Mapping[str, Any]) -> R:
        """The record held by ``row``; columns the record has no field for are ignored."""
        m = row._mapping if isinstance(row, Row) else row
        values = {
            name: m[column] if conv is None else conv(m[column])
            for name, column, conv in self._plan
        }
        return self._record(**values)

    def many(self, rows: list[Row[Any]]) -> list[R]:
        """The records of several rows, in their order."""
        return [self(r) for r in rows]
