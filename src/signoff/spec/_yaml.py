"""Reading flow YAML: a ruamel round-trip tree with positions, its plain copy, duplicate keys.

PyYAML silently keeps the last of two equal keys; ruamel keeps every node's line and column.
The text is composed once to find every duplicate key (ruamel would stop at the first) and
then loaded with duplicates allowed, so that the rest of the file is still checked.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from signoff.errors import SpecIssue

__all__ = ["Loc", "ParsedYaml", "format_path", "locate", "read_yaml", "type_name"]

Loc = tuple[str | int, ...]
"""A path into the document: mapping keys and sequence indexes."""

_MAX_NODES = 100_000  # aliases can expand a short file into a huge tree
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class ParsedYaml:
    """The result of reading flow text: ``ok`` is false when the text is not YAML at all."""

    ok: bool
    tree: Any = None  # ruamel round-trip tree (CommentedMap, CommentedSeq, scalars)
    data: Any = None  # the same document as plain dict/list/str/int/float/bool/None
    issues: list[SpecIssue] = field(default_factory=list)


class _TooLargeError(Exception):
    """Raised internally when the expanded document passes ``_MAX_NODES``."""


def format_path(loc: Sequence[str | int]) -> str:
    """``("tasks", 3, "params", 0, "values")`` -> ``tasks[3].params[0].values``."""
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else step
    return out


def type_name(value: object) -> str:
    """The YAML word for a value's type, for messages like ``expected a list, got mapping``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, datetime.date):
        return "date"
    return type(value).__name__


def read_yaml(text: str, filename: str) -> ParsedYaml:
    """Parse ``text``; syntax errors and duplicate keys come back as issues, never raised."""
    try:
        node = YAML(typ="rt").compose(text)
        issues = _duplicate_keys(node, filename)
        loader = YAML(typ="rt")
        loader.allow_duplicate_keys = True  # reported above, with both positions
        tree = loader.load(text)
        data = _to_plain(tree, [0])
    except MarkedYAMLError as exc:
        return ParsedYaml(ok=False, issues=[_marked_issue(exc, filename)])
    except ReaderError as exc:
        line, col = _offset_position(text, exc.position)
        message = f"invalid YAML: {_first_line(exc)}"
        return ParsedYaml(ok=False, issues=[_issue(filename, line, col, message)])
    except YAMLError as exc:
        message = f"invalid YAML: {_first_line(exc)}"
        return ParsedYaml(ok=False, issues=[_issue(filename, 1, 1, message)])
    except (_TooLargeError, RecursionError):
        message = "the document is too large or nests too deeply (check anchors and aliases)"
        return ParsedYaml(ok=False, issues=[_issue(filename, 1, 1, message)])
    except ValueError as exc:
        # ruamel constructs tagged or timestamp scalars with int()/date(), which raise plainly
        return ParsedYaml(ok=False, issues=[_issue(filename, 1, 1, f"invalid YAML value: {exc}")])
    return ParsedYaml(ok=True, tree=tree, data=data, issues=issues)


def locate(tree: Any, loc: Loc, *, at_key: bool = False) -> tuple[int, int]:
    """1-based (line, column) of the node at ``loc``; of its key when ``at_key``.

    When the path cannot be followed to the end (merged keys, wrong types), the position of
    the deepest node that exists is returned.
    """
    line, col = 0, 0
    node = tree
    if isinstance(node, CommentedMap | CommentedSeq):
        line, col = node.lc.line, node.lc.col
    for i, step in enumerate(loc):
        last = i == len(loc) - 1
        pos: tuple[int, int] | None = None
        if isinstance(node, CommentedMap) and isinstance(step, str):
            key = _find_key(node, step)
            if key is None:
                break
            pos = _map_position(node, key, at_key=(last and at_key) or node[key] is None)
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
            pos = _seq_position(node, step)
            node = node[step]
        else:
            break
        if pos is None:
            break
        line, col = pos
    return line + 1, col + 1


def _find_key(node: CommentedMap, step: str) -> object | None:
    if step in node:
        return step
    for key in node:
        if str(key) == step:
            return key  # type: ignore[no-any-return]
    return None


def _map_position(node: CommentedMap, key: object, *, at_key: bool) -> tuple[int, int] | None:
    try:
        pos = node.lc.key(key) if at_key else node.lc.value(key)
    except (KeyError, TypeError):  # merged keys (<<) carry no position of their own
        return None
    return int(pos[0]), int(pos[1])


def _seq_position(node: CommentedSeq, index: int) -> tuple[int, int] | None:
    try:
        pos = node.lc.item(index)
    except (KeyError, TypeError):
        return None
    return int(pos[0]), int(pos[1])


def _to_plain(value: Any, budget: list[int]) -> Any:
    """Copy a round-trip tree into builtin types (ruamel's scalar subclasses confuse pydantic)."""
    budget[0] += 1
    if budget[0] > _MAX_NODES:
        raise _TooLargeError
    if isinstance(value, dict):
        return {_plain_key(k): _to_plain(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v, budget) for v in value]
    if isinstance(value, ScalarBoolean | bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _plain_key(key: object) -> str:
    if isinstance(key, str):
        return str(key)
    if key is None:
        return "null"
    if isinstance(key, ScalarBoolean | bool):
        return "true" if key else "false"
    return str(key)


def _duplicate_keys(root: Node | None, filename: str) -> list[SpecIssue]:
    """Every key that appears twice in one mapping, at the position of the later one."""
    issues: list[SpecIssue] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[Node, Loc]] = [(root, ())] if root is not None else []
    while stack:
        node, loc = stack.pop()
        if id(node) in seen_nodes:  # an alias of a node already walked
            continue
        seen_nodes.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((child, (*loc, i)) for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            first: dict[tuple[str, str], Node] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                    ident = (str(key_node.tag), str(key_node.value))
                    if ident in first:
                        before = first[ident].start_mark.line + 1
                        mark = key_node.start_mark
                        issues.append(
                            SpecIssue(
                                file=filename,
                                line=mark.line + 1,
                                column=mark.column + 1,
                                field=format_path((*loc, str(key_node.value))),
                                message=(
                                    f"duplicate key '{key_node.value}' "
                                    f"(first defined at line {before})"
                                ),
                            )
                        )
                    else:
                        first[ident] = key_node
                    stack.append((value_node, (*loc, str(key_node.value))))
                else:
                    stack.append((value_node, loc))
    return issues


def _marked_issue(exc: MarkedYAMLError, filename: str) -> SpecIssue:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    message = f"invalid YAML: {problem}"
    if exc.context and exc.problem and exc.context_mark is not None:
        where = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        message += f" ({exc.context} started at {where})"
    return _issue(filename, line, col, message)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _offset_position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    col = offset - (before.rfind("\n") + 1) + 1
    return line, col


def _issue(filename: str, line: int, col: int, message: str) -> SpecIssue:
    return SpecIssue(file=filename, line=line, column=col, field="", message=message)
