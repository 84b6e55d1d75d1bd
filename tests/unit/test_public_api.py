"""The public surface: ``signoff.__all__`` is pinned and ``import signoff`` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import signoff
from signoff.sdk import flow, task_api

FLOW_API = {"Flow", "task"}  # flows in Python, loaded on first use
EXPECTED_ALL = {
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
}

HEAVY = ("sqlalchemy", "fastapi", "alembic", "typer", "rich", "numpy", "ray", "uvicorn")


def test_all_is_pinned() -> None:
    assert set(signoff.__all__) == EXPECTED_ALL
    assert len(signoff.__all__) == len(EXPECTED_ALL)  # no duplicates


def test_every_export_exists_and_comes_from_the_task_api_or_the_flow_api() -> None:
    for name in signoff.__all__:
        assert hasattr(signoff, name), name
    for name in EXPECTED_ALL - {"__version__"} - FLOW_API:
        assert getattr(signoff, name) is getattr(task_api, name)
        assert callable(getattr(signoff, name))
    assert set(task_api.__all__) == EXPECTED_ALL - {"__version__"} - FLOW_API
    for name in FLOW_API:
        assert getattr(signoff, name) is getattr(flow, name)
        assert name in flow.__all__
    assert set(dir(signoff)) >= FLOW_API
    with pytest.raises(AttributeError, match="no_such_name"):
        signoff.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_version_is_a_string() -> None:
    assert isinstance(signoff.__version__, str)
    assert signoff.__version__.count(".") >= 1


def test_import_signoff_stays_light() -> None:
    code = (
        "import json, sys; import signoff; "
        "print(json.dumps(sorted(sys.modules)))"
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "signoff" in loaded
    assert "signoff.sdk.task_api" in loaded
    assert "signoff.sdk.flow" not in loaded  # loaded on first use of signoff.Flow
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == []


def test_defining_a_flow_stays_light_until_it_runs() -> None:
    code = (
        "import json, sys; from signoff import Flow, task; "
        "f = Flow('light'); f.command('a', 'echo a'); f.to_spec(); "
        "print(json.dumps(sorted(sys.modules)))"
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "signoff.sdk.flow" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == []
