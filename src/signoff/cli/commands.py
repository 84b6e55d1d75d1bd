"""The commands of ``signoff``: run, runs, show, logs, approve, reject, endpoints, demo, ..."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from signoff import failpoints
from signoff.bootstrap import App, Settings, build_app
from signoff.cli import remote, views
from signoff.cli.auth import acting_user
from signoff.cli.follow import follow_run
from signoff.cli.progress import ProgressObserver
from signoff.domain.specs import ParamValue
from signoff.domain.states import RunState
from signoff.engine.engine import RunBusyError
from signoff.errors import SignoffError
from signoff.gates.decide import decide
from signoff.spec import load_flow

__all__ = ["app"]

app = typer.Typer(
    name="signoff",
    help="Machine-learning pipelines with a human sign-off before production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
endpoints_app = typer.Typer(help="Prediction endpoints.", invoke_without_command=True)
app.add_typer(endpoints_app, name="endpoints")
gates_app = typer.Typer(help="Gates waiting for a decision.", invoke_without_command=True)
app.add_typer(gates_app, name="gates")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _settings() -> Settings:
    return Settings()


def _user(settings: Settings) -> str:
    return settings.user or getpass.getuser()


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


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _attach_progress(app_: App, *, quiet: bool) -> None:
    """Plain progress lines for runs this process creates and drives."""
    app_.engine.observer = ProgressObserver(err, quiet=quiet)


def _drive_with_progress(app_: App, run_id: str, *, quiet: bool) -> None:
    observer = ProgressObserver(out, quiet=quiet)
    run = app_.store.get_run(run_id)
    observer.seed(run, app_.store.list_task_runs(run_id), app_.store.get_flow(run.flow_hash))
    app_.engine.observer = observer
    with observer.showing():
        app_.engine.drive(run_id)


def _signoff_cmd() -> str:
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


# --------------------------------------------------------------------------- run
@app.command()
def run(
    flow_file: Annotated[Path, typer.Argument(help="The flow file (YAML).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE, overrides a param.")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Start and return at once.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a run of FLOW_FILE and follow it until it ends or waits at a gate."""
    settings = _settings()
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
            _drive_with_progress(app_, run_.id, quiet=as_json)
        final = app_.store.get_run(run_.id)
        if as_json:
            _print_json(views.run_summary(app_.store, final))
        else:
            views.print_outcome(out, app_.store, final, _signoff_cmd())
        if final.state in (RunState.FAILED,):
            raise typer.Exit(1)
    finally:
        app_.close()


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


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Continue a run from its last committed step (after a crash, or a detached start).

    When the run's lease is held by a process that stopped renewing it, this waits for the
    lease to expire (at most SIGNOFF_LEASE_SECONDS) and takes over.
    """
    app_ = build_app(_settings())
    try:
        run_ = app_.store.get_run(run_id)
        _wait_for_lease(app_, run_.id, quiet=quiet)
        _drive_with_progress(app_, run_.id, quiet=quiet)
        if not quiet:
            views.print_outcome(out, app_.store, app_.store.get_run(run_.id), _signoff_cmd())
    finally:
        app_.close()


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    reason: Annotated[str | None, typer.Option("--reason", "-m")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run: what has not ended is cancelled, running commands are stopped."""
    settings = _settings()
    app_ = build_app(settings)
    try:
        run_ = app_.engine.cancel(run_id, actor=acting_user(app_, settings).user, reason=reason)
        if as_json:
            _print_json(views.run_summary(app_.store, app_.store.get_run(run_.id)))
        else:
            out.print(f"run {run_.id} cancelled")
    finally:
        app_.close()


# ----------------------------------------------------------------------- inspect
@app.command()
def runs(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    settings = _settings()
    if settings.server_url:
        with remote.connect(settings) as api:
            rows = api.runs(limit)
        if as_json:
            _print_json(rows)
        else:
            views.print_runs(out, [remote.run_record(r) for r in rows])
        return
    app_ = build_app(settings)
    try:
        items = app_.store.list_runs(limit)
        if as_json:
            _print_json([views.run_row(r) for r in items])
        else:
            views.print_runs(out, items)
    finally:
        app_.close()


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Watch until it ends or waits at a gate.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a run: its state, every task run (params, metrics) and any gate."""
    settings = _settings()
    if settings.server_url:
        with remote.connect(settings) as api:
            if follow:
                remote.follow(api, run_id, err if as_json else out)
            detail_ = api.run_detail(run_id)
        if as_json:
            _print_json(detail_)
        else:
            views.print_detail(out, detail_)
        return
    app_ = build_app(settings)
    try:
        if follow:
            follow_run(app_.store, app_.store.get_run(run_id).id, err if as_json else out)
        detail = views.run_detail(app_.store, app_.store.get_run(run_id))
        if as_json:
            _print_json(detail)
        else:
            views.print_detail(out, detail)
    finally:
        app_.close()


@app.command()
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    task: Annotated[
        str | None, typer.Argument(help="Task name or label, e.g. train-xgb[1].")
    ] = None,
) -> None:
    """Print the output of a run's task runs (all, or one task's)."""
    settings = _settings()
    if settings.server_url:
        with remote.connect(settings) as api:
            found = api.run_detail(run_id)
            picked = [t for t in found["tasks"] if task in (None, t["task"], t["label"])]
            if task is not None and not picked:
                known = ", ".join(sorted({t["task"] for t in found["tasks"]}))
                raise SignoffError(f"run {found['run_id']} has no task {task!r} (tasks: {known})")
            for t in picked:
                text, cut = api.task_log(found["run_id"], t["task_run_id"])
                if len(picked) > 1:
                    out.print(f"[bold]── {t['label']} ({t['state']})[/]")
                if cut:
                    err.print(f"note: only the end of {t['label']}'s output is shown", markup=False)
                if text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                elif len(picked) > 1:
                    out.print("[dim](no output)[/]")
        return
    app_ = build_app(settings)
    try:
        run_ = app_.store.get_run(run_id)
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


# ------------------------------------------------------------------------ gates
def _decide(
    run_id: str, as_user: str | None, comment: str | None, approve: bool, as_json: bool
) -> None:
    from signoff.engine.engine import new_id

    settings = _settings()
    verb = "approved" if approve else "rejected"
    if settings.server_url:  # decided on the server, as the token's user
        with remote.connect(settings) as api:
            decision, final_ = remote.decide_and_wait(
                api,
                run_id,
                as_user=as_user,
                approve=approve,
                comment=comment,
                progress=None if as_json else out,
                note=err,
            )
        if as_json:
            _print_json(
                {
                    **remote.run_summary(final_),
                    "decision": verb,
                    "gate_state": decision["gate_state"],
                }
            )
        else:
            remote.print_outcome(out, final_, _signoff_cmd())
        return
    from signoff.cli.auth import identify

    app_ = build_app(settings)
    try:
        run_ = app_.store.get_run(run_id)
        who = identify(app_, settings, as_user, scope="decide")
        result = decide(
            app_.store,
            app_.engine.clock,
            run_.id,
            actor=who.user,
            approve=approve,
            comment=comment,
            channel="cli",
            new_id=new_id,
            auth=who.auth,
        )
        failpoints.reached("decide.after_commit")
        if not as_json:
            out.print(f"{who.user} {verb} run {run_.id}: gate is now {result.state}", markup=False)
        if result.state.is_terminal:
            try:
                _drive_with_progress(app_, run_.id, quiet=as_json)
            except RunBusyError as exc:  # a server or worker drives it: it will continue
                err.print(f"note: {exc}; it continues there", markup=False)
        final = app_.store.get_run(run_.id)
        if as_json:
            _print_json(
                {
                    **views.run_summary(app_.store, final),
                    "decision": verb,
                    "gate_state": result.state.value,
                }
            )
        else:
            views.print_outcome(out, app_.store, final, _signoff_cmd())
    finally:
        app_.close()


AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="The approver (a target of the gate). On a store with users with passwords, "
        "decisions are the signed-in user's (signoff login, SIGNOFF_TOKEN) and --as may only "
        "name that user (on a terminal, --as asks for the password); likewise with "
        "SIGNOFF_SERVER_URL set.",
    ),
]


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    as_user: AsOpt = None,
    comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the run's open gate; the run continues at once when the quorum is met."""
    _decide(run_id, as_user, comment, True, as_json)


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    as_user: AsOpt = None,
    comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject the run's open gate: the run ends rejected and nothing is deployed."""
    _decide(run_id, as_user, comment, False, as_json)


@gates_app.callback()
def gates(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List gates waiting for a decision."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    if settings.server_url:
        with remote.connect(settings) as api:
            rows = api.open_gates()
        if as_json:
            _print_json(rows)
        else:
            views.print_gates(out, rows)
        return
    app_ = build_app(settings)
    try:
        rows = views.open_gates(app_.store)
        if as_json:
            _print_json(rows)
        else:
            views.print_gates(out, rows)
    finally:
        app_.close()


# -------------------------------------------------------------------- endpoints
@endpoints_app.callback()
def endpoints(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List endpoints with their URL and the model version they serve."""
    if ctx.invoked_subcommand is not None:
        return
    app_ = build_app(_settings())
    try:
        rows = views.endpoint_rows(app_.store, app_.endpoints)
        if as_json:
            _print_json(rows)
        else:
            views.print_endpoints(out, rows)
    finally:
        app_.close()


@endpoints_app.command("stop")
def endpoints_stop(name: Annotated[str, typer.Argument(help="Endpoint name.")]) -> None:
    """Stop an endpoint's serving process."""
    from signoff.domain.records import EndpointRecord

    app_ = build_app(_settings())
    try:
        ep = app_.store.get_endpoint(name)
        if ep is None:
            raise SignoffError(f"no endpoint {name!r}")
        if ep.pid and app_.endpoints.is_alive(ep.pid):
            app_.endpoints.stop(ep.pid)
        app_.store.save_endpoint(
            EndpointRecord(
                name=ep.name,
                url=ep.url,
                port=ep.port,
                pid=None,
                model_version_id=ep.model_version_id,
                state="stopped",
                updated_at=time.time(),
            )
        )
        out.print(f"endpoint {name} stopped")
    finally:
        app_.close()


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="Model name.")] = None,
    history: Annotated[
        bool, typer.Option("--history", help="Who moved each alias, when and why.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List registered model versions and their aliases (champion, challenger)."""
    app_ = build_app(_settings())
    try:
        if history:
            if name is None:
                raise SignoffError("--history needs a model NAME")
            moves = app_.store.alias_history(name)
            labels = {mv.id: mv.label for mv in app_.store.list_model_versions(name)}
            for move in moves:
                move["model_version"] = labels.get(move["model_version_id"])
            if as_json:
                _print_json(moves)
            else:
                views.print_alias_history(out, moves)
            return
        rows = views.model_rows(app_.store, name)
        if as_json:
            _print_json(rows)
        else:
            views.print_models(out, rows)
    finally:
        app_.close()


@app.command()
def compare(
    items: Annotated[
        list[str],
        typer.Argument(help="Runs (all their tasks), task run ids, or RUN:TASK labels."),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Params and metrics of task runs side by side."""
    app_ = build_app(_settings())
    try:
        columns = views.comparison(app_.store, items)
        if as_json:
            _print_json(columns)
        else:
            views.print_comparison(out, columns)
    finally:
        app_.close()


@app.command()
def reproduce(
    run_id: Annotated[str, typer.Argument(help="The run to reproduce.")],
    tolerance: Annotated[
        float, typer.Option(help="Relative tolerance when comparing metrics.")
    ] = 1e-9,
    as_json: JsonOpt = False,
) -> None:
    """Run a past run again from its record and report, metric by metric, whether it matches.

    Exit code 0 when everything matched, 1 otherwise.
    """
    from signoff.engine.reproduce import reproduce as run_reproduction

    settings = _settings()
    app_ = build_app(settings)
    try:
        original = app_.store.get_run(run_id)
        if not as_json:
            out.print(f"reproducing run {original.id} of flow {original.flow_name}")
            _attach_progress(app_, quiet=False)
        report = run_reproduction(
            app_.engine, original.id, started_by=_user(settings), tolerance=tolerance
        )
        if as_json:
            _print_json(report.to_json())
        else:
            views.print_reproduction(out, report)
        if not report.exact:
            raise typer.Exit(1)
    finally:
        app_.close()


# ---------------------------------------------------------------------- flows
@app.command()
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


@app.command()
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
    settings = _settings()
    out.print(f"state: {settings.resolved_home} (database {settings.resolved_database_url})\n")
    run(path, param=param, detach=False, as_json=False)
    if no_server:
        return
    if not sys.stdout.isatty():
        out.print(
            "\nstdout is not a terminal, so the demo does not start the web UI; run it in a "
            "terminal to get the review page and logins for alice and bob (or add users with "
            f"{_signoff_cmd()} users add NAME --password, then run {_signoff_cmd()} server)"
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
