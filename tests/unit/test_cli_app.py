"""The ``signoff`` command is built in one place, complete, from what each module adds.

No command module registers anything by being imported: ``signoff.cli.commands.app`` (and
every ``build_cli()``) holds every command and group, in the order ``--help`` lists them,
whichever modules a program imported before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import typer.main
from typer.testing import CliRunner

from signoff.cli import commands, serving_commands
from signoff.cli.commands import build_cli

TOP = [
    "run",
    "resume",
    "cancel",
    "runs",
    "show",
    "logs",
    "approve",
    "reject",
    "models",
    "compare",
    "reproduce",
    "validate",
    "demo",
    "scheduler",
    "firings",
    "deploy",
    "rollback",
    "promote",
    "outbox",
    "server",
    "worker",
    "login",
    "logout",
    "review",
]
GROUPS = {
    "endpoints": ["stop", "history", "export"],
    "gates": ["tick"],
    "schedule": ["list", "add", "pause", "resume", "remove"],
    "triggers": ["list", "fire-check", "add", "remove"],
    "users": ["add", "list", "token"],
    "groups": ["add"],
    "audit": ["verify", "show"],
    "kube": ["manifests"],
}

# Prints the command tree of signoff.cli.commands.app, imported first and alone.
_TREE = """
import json, typer.main
from signoff.cli.commands import app
group = typer.main.get_command(app)
print(json.dumps({
    name: list(getattr(cmd, "commands", {})) or None for name, cmd in group.commands.items()
}))
"""


def _tree(app: typer.Typer) -> dict[str, Any]:
    group = typer.main.get_command(app)
    found = getattr(group, "commands", {})
    return {name: list(getattr(cmd, "commands", {})) or None for name, cmd in found.items()}


def _expected() -> dict[str, Any]:
    return {**dict.fromkeys(TOP), **GROUPS}


def test_build_cli_has_every_command_and_group_in_help_order() -> None:
    tree = _tree(build_cli())
    assert list(tree) == [*TOP, *GROUPS]
    assert tree == _expected()


def test_the_app_is_complete_when_imported_alone() -> None:
    """Before: the deploy, schedule, users, login and review commands were missing here
    unless something had imported their modules first."""
    out = subprocess.run(
        [sys.executable, "-c", _TREE], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == _expected()


def test_each_build_is_separate_and_the_same() -> None:
    first, second = build_cli(), build_cli()
    assert first is not second
    assert _tree(first) == _tree(second) == _tree(commands.app)
    # Building again added nothing twice to the shared groups.
    assert _tree(first)["endpoints"] == GROUPS["endpoints"]
    assert len(serving_commands.endpoints_app.registered_commands) == 3


def test_help_lists_the_commands_and_groups() -> None:
    result = CliRunner().invoke(build_cli(), ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for name in [*TOP, *GROUPS]:
        assert f" {name} " in result.output, name
    sub = CliRunner().invoke(build_cli(), ["endpoints", "--help"], env={"COLUMNS": "120"})
    assert sub.exit_code == 0, sub.output
    assert all(f" {name} " in sub.output for name in GROUPS["endpoints"])


def test_a_setting_the_settings_refuse_is_one_line_per_variable(tmp_path: Any) -> None:
    """Before: a bad SIGNOFF_SLOTS or SIGNOFF_GPUS printed pydantic's traceback."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SIGNOFF_HOME": str(tmp_path / "home"),
        "SIGNOFF_SLOTS": "many",
        "SIGNOFF_GPUS": "first",
    }
    done = subprocess.run(
        [sys.executable, "-m", "signoff.cli.main", "runs"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("error: ") for line in lines)
    assert any(line.startswith("error: SIGNOFF_SLOTS: ") for line in lines)
    assert any(line.startswith("error: SIGNOFF_GPUS must be a count") for line in lines)
    assert not (tmp_path / "home").exists()  # nothing was opened or created
