"""Pydantic errors on flow-file models turned into messages for people, with did-you-means."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from signoff.spec._yaml import Loc, type_name

__all__ = ["describe_error", "unknown_key_message"]

_HIDDEN_KEYS = frozenset({"top", "left"})  # canvas coordinates of cnvrg exports

_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "float_type": "a number",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def describe_error(model: type[BaseModel], error: ErrorDetails) -> tuple[Loc, Loc, bool, str]:
    """One pydantic error as (field path, position path, position at the key?, message)."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        return loc, loc, True, unknown_key_message(key, _keys_at(model, loc[:-1]))
    if kind == "missing" and loc:
        return loc, loc[:-1], False, f"missing required key '{loc[-1]}'"
    if kind == "value_error":
        ctx = error.get("ctx") or {}
        return loc, loc, False, str(ctx.get("error", error["msg"]))
    if kind in _EXPECTED:
        got = type_name(error["input"])
        return loc, loc, False, f"expected {_EXPECTED[kind]}, got {got}"
    if kind == "too_short" and loc == ("tasks",):
        return loc, loc, False, "a flow needs at least one task"
    message = error["msg"].replace("Input should be", "must be")
    return loc, loc, False, message


def unknown_key_message(key: str, allowed: Iterable[str]) -> str:
    """``unknown key 'x'`` with a did-you-mean, or the list of allowed keys."""
    choices = sorted(k for k in allowed if k not in _HIDDEN_KEYS)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    return f"unknown key '{key}' (allowed: {', '.join(choices)})"


def _keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys accepted by the (nested) model found at ``loc``."""
    current: type[BaseModel] | None = model
    for step in loc:
        if current is None:
            return []
        if isinstance(step, int):
            continue
        current = _field_model(current, step)
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _field_model(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return _find_model(info.annotation)
    return None


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None
