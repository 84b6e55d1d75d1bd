"""What every command module shares: the two consoles, ``--json``, settings, JSON output.

Output goes to ``out``; notes, warnings and progress of a ``--json`` command go to ``err`` so
stdout holds exactly one JSON document.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from signoff.bootstrap import Settings
from signoff.errors import SignoffError

__all__ = [
    "JsonOpt",
    "err",
    "out",
    "print_json",
    "read_settings",
    "settings_user",
    "signoff_cmd",
]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def read_settings() -> Settings:
    """The settings of this invocation (environment ``SIGNOFF_*``), read once per command.

    A value the settings refuse is a user mistake: one line per setting, naming its variable,
    never a traceback.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise SignoffError("\n".join(_setting_problems(exc))) from None


def _setting_problems(exc: ValidationError) -> list[str]:
    lines = []
    for problem in exc.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "settings"
        message = str(problem["msg"]).removeprefix("Value error, ")
        variable = f"SIGNOFF_{field.upper()}"
        lines.append(message if message.startswith(variable) else f"{variable}: {message}")
    return lines


def settings_user(settings: Settings) -> str:
    """Who this shell is by default: ``SIGNOFF_USER``, else the login name."""
    return settings.user or getpass.getuser()


def print_json(data: Any) -> None:
    """Write ``data`` as the one JSON document of a ``--json`` command.

    A read model (or a list of them) is written as ``model_dump(mode="json")``."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def signoff_cmd() -> str:
    """How the user should type signoff (the venv's script when it is not on PATH)."""
    script = Path(sys.argv[0])
    if (
        script.name == "signoff"
        and script.parent != Path()
        and str(script.parent) not in (os.environ.get("PATH", "").split(os.pathsep))
    ):
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return "signoff"
