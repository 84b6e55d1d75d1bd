"""The ``attacks`` fixture and ``benchmarks/attacks.py``: what is written, and how it is summed.

The fixture is exercised in a child pytest run on a small test file next to a copy of this
suite's ``conftest.py``, so its hooks run as they do for the real attack tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parents[1]

SAMPLE = """
import pytest


def test_records_what_it_tried(attacks):
    tried = ["../x", "/abs", "x\\0y"]
    attacks.record("bad name", "cli", len(tried), len(tried))
    attacks.record("forged token", "api", 1, 1)


def test_fails_after_recording(attacks):
    attacks.record("kept nowhere", "api", 1, 1)
    assert False


def test_fails_before_recording(attacks):
    assert False
    attacks.record("never reached", "api", 1, 1)


def test_on_a_backend(database_url, attacks):
    attacks.record("late decision", "store", 1, 1)


@pytest.mark.parametrize(
    ("channel", "tries", "held"), [("nowhere", 1, 1), ("cli", 0, 0), ("cli", 1, 2)]
)
def test_a_row_that_cannot_be_true_is_refused(attacks, channel, tries, held):
    with pytest.raises(ValueError):
        attacks.record("x", channel, tries, held)
"""


def _child_run(folder: Path, report: Path | None) -> subprocess.CompletedProcess[str]:
    shutil.copy(TESTS / "conftest.py", folder / "conftest.py")
    (folder / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "SIGNOFF_ATTACK_REPORT"}
    if report is not None:
        env["SIGNOFF_ATTACK_REPORT"] = str(report)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not postgres"]
    return subprocess.run(
        [*command, str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_only_rows_of_passing_tests_are_written_with_their_test_and_backend(
    tmp_path: Path,
) -> None:
    report = tmp_path / "rows.jsonl"
    done = _child_run(tmp_path, report)
    assert done.returncode == 1, done.stdout + done.stderr  # the two failing sample tests
    assert "2 failed, 5 passed" in done.stdout, done.stdout
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(
        (r["attack"], r["channel"], r["tries"], r["held"], r["backend"]) for r in rows
    ) == [
        ("bad name", "cli", 3, 3, None),
        ("forged token", "api", 1, 1, None),
        ("late decision", "store", 1, 1, "sqlite"),
    ]
    tests = {r["attack"]: r["test"] for r in rows}
    assert tests["bad name"] == "test_sample.py::test_records_what_it_tried"
    assert tests["late decision"] == "test_sample.py::test_on_a_backend[sqlite]"


def test_nothing_is_written_without_the_variable(tmp_path: Path) -> None:
    done = _child_run(tmp_path, None)
    assert "2 failed, 5 passed" in done.stdout, done.stdout
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert written == []


@pytest.fixture(scope="module")
def script() -> ModuleType:
    """``benchmarks/attacks.py`` loaded as a module (the folder is no package)."""
    path = TESTS.parent / "benchmarks" / "attacks.py"
    spec = importlib.util.spec_from_file_location("attacks_script", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def test_the_script_sums_per_attack_and_orders_by_channel(script: ModuleType) -> None:
    rows = [
        {"attack": "kill -9", "channel": "process", "tries": 1, "held": 1, "backend": "postgres"},
        {"attack": "bad | name", "channel": "cli", "tries": 17, "held": 17, "backend": None},
        {"attack": "kill -9", "channel": "process", "tries": 2, "held": 2, "backend": "sqlite"},
        {"attack": "forged link", "channel": "link", "tries": 1200, "held": 1200, "backend": None},
    ]
    lines = script.table(script.summed(rows))
    assert lines[2:] == [
        "| bad \\| name | cli | - | 17 | 17 |",
        "| forged link | link | - | 1,200 | 1,200 |",
        "| kill -9 | process | sqlite, postgres | 3 | 3 |",
        "| **total: 3 attacks** | | | **1,220** | **1,220** |",
    ]


def test_the_script_lists_every_instrumented_file(script: ModuleType) -> None:
    for name in script.FILES:
        assert (TESTS.parent / name).is_file(), name
    assert all(name.startswith("tests/unit/") for name in script.UNIT)
