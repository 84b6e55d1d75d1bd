"""signoff: machine-learning pipelines with a human sign-off before production.

``import signoff`` is light: it exposes the task-side API used from inside tasks. ``Flow`` and
``task`` (flows defined in Python) are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from signoff.sdk.task_api import (
    input_dir,
    log_metric,
    log_model,
    log_param,
    log_tag,
    output_dir,
    param,
    params,
)

if TYPE_CHECKING:
    from signoff.sdk.flow import Flow, task

__all__ = [
    "Flow",
    "__version__",
    "input_dir",
    "log_metric",
    "log_model",
    "log_param",
    "log_tag",
    "output_dir",
    "param",
    "params",
    "task",
]

from signoff._version import __version__

_LAZY = {"Flow": "signoff.sdk.flow", "task": "signoff.sdk.flow"}


def __getattr__(name: str) -> Any:
    """``signoff.Flow`` and ``signoff.task``: the flow builder is imported when first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'signoff' has no attribute {name!r}")

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
