"""Commands that start and watch runs: run, resume, cancel, runs, show, logs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from signoff.bootstrap import App, Settings, build_app
from signoff.bootstrap.lookup import resolve_run
from signoff.cli import remote, views
from signoff.cli.auth import acting_user
from signoff.cli.console import JsonOpt, err, out, print_json, read_settings, signoff_cmd
from signoff.cli.follow import follow_run
from signoff.cli.progress import drive_with_progress
from signoff.domain.specs import ParamValue
from signoff.domain.states import RunState
from signoff.errors import SignoffError
from signoff.spec import load_flow
from signoff.views import build

__all__ = ["register", "run"]


def register(cli: typer.Typer) -> None:
    """Add ``run``, ``resume``, ``cancel``, ``runs``, ``show`` and ``logs`` to ``cli``."""
    for command in (run, resume, cancel, runs, show, logs):
        cli.command()(command)


def _parse_params(items: list[str]) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SignoffError(f"--param takes KEY=VALUE, got {item!r}")
        params[key.strip()] = _typed(raw.strip())
    return params


def _typed(raw: str) -> ParamValue:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


# --------------------------------------------------------------------------- run
def run(
    flow_file: Annotated[Path, typer.Argument(help="The flow file (YAML).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE, overrides a param.")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Start and return at once.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a run of FLOW_FILE and follow it until it ends or waits at a gate."""
    settings = read_settings()
    loaded = load_flow(flow_file)
    for warning in loaded.warnings:
        err.print(f"warning: {warning}", markup=False)
    app_ = build_app(settings)
    try:
        run_ = app_.engine.start_run(
            loaded.spec,
            base_dir=loaded.base_dir,
            source=flow_file.read_text(),
            params=_parse_params(param or []),
            started_by=acting_user(app_, settings).user,
        )
        if detach:
            _spawn_driver(settings, run_.id)
        else:
            if not as_json:
                out.print(f"run [bold]{run_.id}[/] of flow {run_.flow_name} started")
            drive_with_progress(app_, run_.id, out, quiet=as_json)
        final = app_.store.get_run(run_.id)
        if as_json:
            print_json(build.run_summary(app_.store, final))
        else:
            _print_outcome(app_, final.id)
        if final.state in (RunState.FAILED,):
            raise typer.Exit(1)
    finally:
        app_.close()


def _print_outcome(app_: App, run_id: str) -> None:
    detail = build.run_detail(app_.store, app_.store.get_run(run_id))
    views.print_outcome(out, detail, signoff_cmd(), name_approver=True)


def _wait_for_lease(app_: App, run_id: str, *, quiet: bool) -> None:
    owner, expires = app_.store.lease_of(run_id)
    if owner is None or expires is None:
        return
    wait = expires - time.time()
    if wait <= 0:
        return
    if not quiet:
        err.print(
            f"run {run_id} is held by {owner}; if that process is gone its lease ends in "
            f"{wait:.0f}s, then this one takes over",
            markup=False,
        )
    time.sleep(wait + 0.05)


def _spawn_driver(settings: Settings, run_id: str) -> None:
    home = settings.resolved_home
    log = (home / "runs" / run_id / "driver.log").open("ab")
    env = {**os.environ, "SIGNOFF_HOME": str(home)}
    if settings.database_url:
        env["SIGNOFF_DATABASE_URL"] = settings.database_url
    subprocess.Popen(
        [sys.executable, "-m", "signoff.cli.main", "resume", run_id, "--quiet"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )


def resume(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Continue a run from its last committed step (after a crash, or a detached start).

    When the run's lease is held by a process that stopped renewing it, this waits for the
    lease to expire (at most SIGNOFF_LEASE_SECONDS) and takes over.
    """
    app_ = build_app(read_settings())
    try:
        run_ = resolve_run(app_.store, run_id)
        _wait_for_lease(app_, run_.id, quiet=quiet)
        drive_with_progress(app_, run_.id, out, quiet=quiet)
        if not quiet:
            _print_outcome(app_, run_.id)
    finally:
        app_.close()


def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    reason: Annotated[str | None, typer.Option("--reason", "-m")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run: what has not ended is cancelled, running commands are stopped."""
    settings = read_settings()
    app_ = build_app(settings)
    try:
        run_id = resolve_run(app_.store, run_id).id
        run_ = app_.engine.cancel(run_id, actor=acting_user(app_, settings).user, reason=reason)
        if as_json:
            print_json(build.run_summary(app_.store, app_.store.get_run(run_.id)))
        else:
            out.print(f"run {run_.id} cancelled")
    finally:
        app_.close()


# ----------------------------------------------------------------------- inspect
def runs(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    settings = read_settings()
    if settings.server_url:
        with remote.connect(settings) as api:
            rows = api.runs(limit)
        if as_json:
            print_json(rows)
        else:
            views.print_runs(out, rows)
        return
    app_ = build_app(settings)
    try:
        items = [build.run_row(r) for r in app_.store.list_runs(limit)]
        if as_json:
            print_json(items)
        else:
            views.print_runs(out, items)
    finally:
        app_.close()


def show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Watch until it ends or waits at a gate.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a run: its state, every task run (params, metrics) and any gate."""
    settings = read_settings()
    if settings.server_url:
        with remote.connect(settings) as api:
            if follow:
                remote.follow(api, run_id, err if as_json else out)
            detail_ = api.run_detail(run_id)
        if as_json:
            print_json(detail_)
        else:
            views.print_detail(out, detail_)
        return
    app_ = build_app(settings)
    try:
        if follow:
            follow_run(app_.store, resolve_run(app_.store, run_id).id, err if as_json else out)
        detail = build.run_detail(app_.store, resolve_run(app_.store, run_id))
        if as_json:
            print_json(detail)
        else:
            views.print_detail(out, detail)
    finally:
        app_.close()


def logs(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    task: Annotated[
        str | None, typer.Argument(help="Task name or label, e.g. train-xgb[1].")
    ] = None,
) -> None:
    """Print the output of a run's task runs (all, or one task's)."""
    settings = read_settings()
    if settings.server_url:
        with remote.connect(settings) as api:
            found = api.run_detail(run_id)
            picked = [t for t in found.tasks if task in (None, t.task, t.label)]
            if task is not None and not picked:
                known = ", ".join(sorted({t.task for t in found.tasks}))
                raise SignoffError(f"run {found.run_id} has no task {task!r} (tasks: {known})")
            for t in picked:
                text, cut = api.task_log(found.run_id, t.task_run_id)
                if len(picked) > 1:
                    out.print(f"[bold]── {t.label} ({t.state})[/]")
                if cut:
                    err.print(f"note: only the end of {t.label}'s output is shown", markup=False)
                if text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                elif len(picked) > 1:
                    out.print("[dim](no output)[/]")
        return
    app_ = build_app(settings)
    try:
        run_ = resolve_run(app_.store, run_id)
        trs = app_.store.list_task_runs(run_.id)
        chosen = [tr for tr in trs if task in (None, tr.task_name, tr.label, tr.key)]
        if task is not None and not chosen:
            names = sorted({tr.task_name for tr in trs})
            raise SignoffError(f"run {run_.id} has no task {task!r} (tasks: {', '.join(names)})")
        for tr in chosen:
            log = Path(tr.work_dir) / "stdout.log"
            if len(chosen) > 1:
                out.print(f"[bold]── {tr.label} ({tr.state})[/]")
            if log.is_file():
                sys.stdout.write(log.read_text(errors="replace"))
                sys.stdout.flush()
            elif len(chosen) > 1:
                out.print("[dim](no output)[/]")
    finally:
        app_.close()
