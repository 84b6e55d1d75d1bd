"""Writing a flow's plain mapping as flow-file YAML, the text the loader then reads.

Only the types a flow file holds go in (anything else is a ``TypeError`` naming the field);
short lists and the small mappings of ``resources``/``env``/param items are written on one
line, as a person would write them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

__all__ = ["dump_document"]


def dump_document(document: dict[str, Any], *, where: str) -> str:
    yaml = YAML(typ="rt")
    yaml.width = 1 << 16  # never fold a long command over lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(_plain(document, where, ()), out)
    return out.getvalue()


_INLINE_MAPPINGS = frozenset({"resources", "env"})  # written {cpu: 2, gpu: 0}
_INLINE_ITEMS = frozenset({"params", "conditions"})  # items written {key: seed, value: 7}
_Path = tuple[str | int, ...]


def _plain(value: Any, where: str, path: _Path) -> Any:
    """A copy made of the types a flow file holds; anything else is a ``TypeError``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        mapping = CommentedMap(
            (str(k), _plain(v, where, (*path, str(k)))) for k, v in value.items()
        )
        if _inline(path) and all(_is_flow(v) for v in mapping.values()):
            mapping.fa.set_flow_style()
        return mapping
    if isinstance(value, list | tuple):
        items = CommentedSeq(_plain(v, where, (*path, i)) for i, v in enumerate(value))
        if not any(isinstance(item, dict | list) for item in items):
            items.fa.set_flow_style()  # short lists on one line: [3, 6]
        return items
    if hasattr(value, "__index__"):  # integer types of other libraries (numpy.int64)
        return int(value.__index__())
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    raise TypeError(
        f"{where}: {_path_text(path)}: a value of type {kind} cannot go in a flow; "
        "use str, int, float or bool (and lists and mappings of them)"
    )


def _is_flow(node: Any) -> bool:
    """A scalar, or a list already written on one line."""
    if isinstance(node, CommentedSeq):
        return bool(node.fa.flow_style())
    return not isinstance(node, dict | list)


def _inline(path: _Path) -> bool:
    if path and path[-1] in _INLINE_MAPPINGS:
        return True
    return len(path) >= 2 and isinstance(path[-1], int) and path[-2] in _INLINE_ITEMS


def _path_text(path: _Path) -> str:
    """``("tasks", 2, "params", 0, "value")`` -> ``tasks[2].params[0].value``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text
