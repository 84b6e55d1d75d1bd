"""Entry point: run the CLI; every SignoffError becomes a one-line reason and an exit code."""

from __future__ import annotations

import sys

from rich.console import Console

from signoff.cli.commands import app
from signoff.errors import SignoffError

__all__ = ["main"]


def main() -> None:
    """Run the CLI; a user mistake never prints a traceback."""
    try:
        app()
    except SignoffError as exc:
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        for line in str(exc).splitlines() or [type(exc).__name__]:
            console.print(f"error: {line}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
