"""signoff: machine-learning pipelines with a human sign-off before production.

``import signoff`` is light: it exposes the task-side API used from inside tasks.
"""

from __future__ import annotations

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

__all__ = [
    "__version__",
    "input_dir",
    "log_metric",
    "log_model",
    "log_param",
    "log_tag",
    "output_dir",
    "param",
    "params",
]

__version__ = "0.1.0"
