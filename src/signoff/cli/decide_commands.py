"""Deciding gates from the command line: approve, reject, and the ``gates`` group.

``signoff gates`` lists the gates waiting for a decision; ``signoff gates tick`` runs the gate
timers once. A decision is the signed-in user's on a store with users with passwords
(:func:`signoff.cli.auth.identify`), or the token's user on ``SIGNOFF_SERVER_URL``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from signoff import failpoints
from signoff.bootstrap import build_app
from signoff.bootstrap.lookup import resolve_run
from signoff.cli import remote, views
from signoff.cli.auth import identify
from signoff.cli.console import JsonOpt, err, out, print_json, read_settings, signoff_cmd
from signoff.cli.progress import drive_with_progress
from signoff.engine.engine import RunBusyError, new_id
from signoff.gates.decide import decide
from signoff.views import build
from signoff.views.models import RunSummary

__all__ = ["gates_app", "register"]

gates_app = typer.Typer(help="Gates waiting for a decision.", invoke_without_command=True)


def register(cli: typer.Typer) -> None:
    """Add ``approve`` and ``reject`` to ``cli``."""
    for command in (approve, reject):
        cli.command()(command)


def _print_decided(summary: RunSummary, verb: str, gate_state: str) -> None:
    """The ``--json`` of a decision: the run's short form, the decision, the gate's state."""
    print_json({**summary.model_dump(mode="json"), "decision": verb, "gate_state": gate_state})


def _decide(
    run_id: str, as_user: str | None, comment: str | None, approve: bool, as_json: bool
) -> None:
    settings = read_settings()
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
            _print_decided(build.summary_of(final_), verb, decision.gate_state)
        else:
            views.print_outcome(out, final_, signoff_cmd(), name_approver=False)
        return
    app_ = build_app(settings)
    try:
        run_ = resolve_run(app_.store, run_id)
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
                drive_with_progress(app_, run_.id, out, quiet=as_json)
            except RunBusyError as exc:  # a server or worker drives it: it will continue
                err.print(f"note: {exc}; it continues there", markup=False)
        final = build.run_detail(app_.store, app_.store.get_run(run_.id))
        if as_json:
            _print_decided(build.summary_of(final), verb, result.state.value)
        else:
            views.print_outcome(out, final, signoff_cmd(), name_approver=True)
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


def approve(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    as_user: AsOpt = None,
    comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the run's open gate; the run continues at once when the quorum is met."""
    _decide(run_id, as_user, comment, True, as_json)


def reject(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    as_user: AsOpt = None,
    comment: Annotated[str | None, typer.Option("--comment", "-m")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject the run's open gate: the run ends rejected and nothing is deployed."""
    _decide(run_id, as_user, comment, False, as_json)


# -------------------------------------------------------------------------- gates
@gates_app.callback()
def gates(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List gates waiting for a decision."""
    if ctx.invoked_subcommand is not None:
        return
    settings = read_settings()
    if settings.server_url:
        with remote.connect(settings) as api:
            rows = api.open_gates()
        if as_json:
            print_json(rows)
        else:
            views.print_gates(out, rows)
        return
    app_ = build_app(settings)
    try:
        rows = build.open_gates(app_.store)
        if as_json:
            print_json(rows)
        else:
            views.print_gates(out, rows)
    finally:
        app_.close()


@gates_app.command("tick")
def gates_tick() -> None:
    """Run the gate timers once: expire overdue gates (never approving) and send reminders."""
    app_ = build_app(read_settings())
    try:
        expired = app_.gates.expire_due()
        reminded = app_.gates.remind_due()
        out.print(f"{len(expired)} gate(s) expired, {len(reminded)} reminder(s) sent")
    finally:
        app_.close()
