"""Commands about flow files: validate, and demo (the reference scenario, end to end)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from signoff.bootstrap import App, Settings, build_app
from signoff.cli.console import err, out, read_settings, signoff_cmd
from signoff.cli.run_commands import run
from signoff.errors import SignoffError
from signoff.spec import load_flow

__all__ = ["register"]


def register(cli: typer.Typer) -> None:
    """Add ``validate`` and ``demo`` to ``cli``."""
    for command in (validate, demo):
        cli.command()(command)


def validate(flow_file: Annotated[Path, typer.Argument(help="The flow file (YAML).")]) -> None:
    """Check a flow file; print every problem with its line and column (exit 2 on errors)."""
    loaded = load_flow(flow_file)
    for warning in loaded.warnings:
        err.print(f"warning: {warning}", markup=False)
    spec = loaded.spec
    out.print(
        f"{flow_file}: flow {spec.name!r} is valid: {len(spec.tasks)} tasks, "
        f"spec hash {spec.spec_hash[:12]}"
    )


def demo(
    flow_file: Annotated[
        Path | None, typer.Option("--flow", help="Flow to run (default: examples/recsys).")
    ] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p")] = None,
    no_server: Annotated[
        bool, typer.Option("--no-server", help="Stop at the gate; do not start the web UI.")
    ] = False,
) -> None:
    """Run the reference scenario: train, pick a champion, wait for alice or bob, serve the review.

    At the gate, the demo adds the approvers alice and bob with random passwords (printed
    once, only when it creates them) and serves the web UI in the foreground (Ctrl-C stops
    it). With --no-server, or when stdout is not a terminal, it stops at the gate instead.
    """
    path = flow_file or _find_example()
    out.print(f"[bold]signoff demo[/]: the weekly recommender retrain in {path.parent}")
    settings = read_settings()
    out.print(f"state: {settings.resolved_home} (database {settings.resolved_database_url})\n")
    run(path, param=param, detach=False, as_json=False)
    if no_server:
        return
    if not sys.stdout.isatty():
        out.print(
            "\nstdout is not a terminal, so the demo does not start the web UI; run it in a "
            "terminal to get the review page and logins for alice and bob (or add users with "
            f"{signoff_cmd()} users add NAME --password, then run {signoff_cmd()} server)"
        )
        return
    _serve_demo(settings)


_DEMO_APPROVERS = ("alice", "bob")


def _serve_demo(settings: Settings) -> None:
    """Add the demo approvers (once), then serve the web UI until Ctrl-C."""
    from urllib.parse import urlsplit

    import uvicorn

    from signoff.server import create_app
    from signoff.server.worker import Worker

    app_ = build_app(settings)
    try:
        latest = app_.store.list_runs(limit=1)
        gates = app_.store.waiting_gates()
        mine = [g for g in gates if latest and g.run_id == latest[0].id]
        base = settings.base_url.rstrip("/")
        where = f"{base}/gates/{mine[0].id}" if mine else f"{base}/runs"
        logins = _add_demo_approvers(app_)
        out.print(f"\n[bold]Review it in the browser[/]: {where}", highlight=False)
        for name, password in logins:
            if password is None:
                out.print(f"  sign in as {name} (user created earlier; password printed then)")
            else:
                out.print(f"  sign in as {name}, password {password}", markup=False)
        if any(p is not None for _, p in logins):
            out.print("  (the passwords are shown this once)")
        parts = urlsplit(base)
        port = parts.port or 8765
        out.print(f"serving on 127.0.0.1:{port}; Ctrl-C stops it")
        server_app = create_app(app_, worker=Worker(app_))
        uvicorn.run(server_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        app_.close()


def _add_demo_approvers(app_: App) -> list[tuple[str, str | None]]:
    """Create alice and bob (approvers) with random passwords when they do not exist yet."""
    import secrets

    from signoff.domain.records import UserRecord
    from signoff.server.passwords import hash_password

    logins: list[tuple[str, str | None]] = []
    for name in _DEMO_APPROVERS:
        if app_.store.get_user(name) is not None:
            logins.append((name, None))
            continue
        password = secrets.token_urlsafe(12)
        app_.store.add_user(
            UserRecord(name, None, ("approver",), True, time.time()),
            password_hash=hash_password(password),
        )
        logins.append((name, password))
    return logins


def _find_example() -> Path:
    candidates = [
        Path.cwd() / "examples" / "recsys" / "flow.yaml",
        Path(__file__).resolve().parents[3] / "examples" / "recsys" / "flow.yaml",
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise SignoffError(
        "examples/recsys/flow.yaml not found; run the demo from the repository or pass --flow"
    )
