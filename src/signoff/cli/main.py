"""Entry point: run the CLI; every SignoffError becomes a one-line reason and an exit code."""

from __future__ import annotations

import sys

from rich.console import Console

from signoff.errors import SignoffError

__all__ = ["main"]


def main() -> None:
    """Run the CLI; a user mistake never prints a traceback."""
    import signoff.cli.schedule_commands
    import signoff.cli.serving_commands  # noqa: F401  (registers its commands)
    from signoff.cli import (  # noqa: F401  (register commands)
        gate_commands,
        login_commands,
        review_commands,
    )
    from signoff.cli.commands import app

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
