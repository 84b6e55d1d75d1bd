"""Commands for people and governance: server, outbox, and the users, groups and audit groups."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from signoff.bootstrap import build_app
from signoff.bootstrap.lookup import resolve_run
from signoff.cli.console import JsonOpt, err, out, print_json, read_settings
from signoff.domain.records import UserRecord
from signoff.errors import NotFoundError, SignoffError
from signoff.views import inventory

__all__ = ["ROLES", "audit_app", "groups_app", "register", "users_app"]

users_app = typer.Typer(help="Users who start runs and decide gates.", no_args_is_help=True)
groups_app = typer.Typer(help="Groups of approvers (targets like group:leads).")
audit_app = typer.Typer(help="The hash-chained audit log of every gate event.")

ROLES = ("admin", "editor", "approver", "viewer")


def register(cli: typer.Typer) -> None:
    """Add ``outbox`` and ``server`` to ``cli`` (the groups are added by the builder)."""
    for command in (outbox, server):
        cli.command()(command)


# ------------------------------------------------------------------------- users
@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    email: Annotated[str | None, typer.Option("--email", help="Where gate e-mails go.")] = None,
    role: Annotated[list[str] | None, typer.Option("--role", help=f"One of {ROLES}.")] = None,
    password: Annotated[
        bool, typer.Option("--password", help="Ask for a password (for the web UI).")
    ] = False,
) -> None:
    """Add a user."""
    roles = tuple(role or ["approver"])
    bad = sorted(set(roles) - set(ROLES))
    if bad:
        raise SignoffError(f"unknown role(s) {', '.join(bad)}; roles are {', '.join(ROLES)}")
    password_hash = None
    if password:
        from signoff.server.passwords import hash_password

        secret = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        password_hash = hash_password(secret)
    app_ = build_app(read_settings())
    try:
        app_.store.add_user(
            UserRecord(name=name, email=email, roles=roles, active=True, created_at=time.time()),
            password_hash=password_hash,
        )
        out.print(f"user {name} added ({', '.join(roles)})")
    finally:
        app_.close()


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """List users."""
    app_ = build_app(read_settings())
    try:
        rows = [inventory.user_row(u) for u in app_.store.list_users()]
        if as_json:
            print_json(rows)
            return
        table = Table()
        for col in ("user", "e-mail", "roles", "active"):
            table.add_column(col)
        for u in rows:
            table.add_row(u.name, u.email or "", ", ".join(u.roles), str(u.active))
        out.print(table if rows else "no users yet")
    finally:
        app_.close()


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="The user the token acts as.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="read, decide, run, admin (only what the user's roles allow)"),
    ] = None,
    days: Annotated[float | None, typer.Option(help="Expires after this many days.")] = 90,
) -> None:
    """Create an API token; it is shown once and stored only as a hash.

    Its scopes must be ones the user's roles allow (viewer and approver: read, decide;
    editor: also run; admin: also admin); unknown scopes are refused.
    """
    from signoff.server.tokens import issue_token

    app_ = build_app(read_settings())
    try:
        token = issue_token(
            app_.store,
            name,
            scopes=tuple(scope or ["read", "decide"]),
            now=time.time(),
            ttl_seconds=None if days is None else days * 86400,
        )
        out.print(token, markup=False, highlight=False)
        err.print("keep it: it is not shown again", markup=False)
    finally:
        app_.close()


# ------------------------------------------------------------------------ groups
@groups_app.command("add")
def groups_add(
    name: Annotated[str, typer.Argument(help="Group name (target it as group:NAME).")],
    members: Annotated[str, typer.Option("--members", help="Comma-separated user names.")],
) -> None:
    """Create or replace a group."""
    names = [m.strip() for m in members.split(",") if m.strip()]
    app_ = build_app(read_settings())
    try:
        unknown = [m for m in names if app_.store.get_user(m) is None]
        if unknown:
            raise NotFoundError(f"unknown user(s) {', '.join(unknown)}; add them first")
        app_.store.set_group(name, names)
        out.print(f"group {name}: {', '.join(sorted(names))}")
    finally:
        app_.close()


@groups_app.callback(invoke_without_command=True)
def groups_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List groups and their members."""
    if ctx.invoked_subcommand is not None:
        return
    app_ = build_app(read_settings())
    try:
        groups = app_.store.groups()
        if as_json:
            print_json(groups)
        elif not groups:
            out.print("no groups yet")
        else:
            for group, members in groups.items():
                out.print(f"group:{group}  {', '.join(members)}")
    finally:
        app_.close()


# ------------------------------------------------------------------------ outbox
def outbox(as_json: JsonOpt = False) -> None:
    """List the e-mails written to the local outbox (when no SMTP server is set)."""
    import email
    from email import policy

    settings = read_settings()
    folder = settings.resolved_home / "outbox"
    files = sorted(folder.glob("*.eml")) if folder.is_dir() else []
    rows = []
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        rows.append({"file": str(path), "to": msg["To"], "subject": msg["Subject"]})
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(f"the outbox ({folder}) is empty")
        return
    for r in rows:
        out.print(f"{r['to']}: {r['subject']}\n  {r['file']}", markup=False)


# ------------------------------------------------------------------------- audit
@audit_app.command("verify")
def audit_verify(
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            help="Compare with this checkpoint file (e.g. the copy your anchor URL kept) "
            "instead of the home folder's.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the keyed audit chain, its checkpoints and the decisions table; exit 1 on a break.

    Catches an entry edited, deleted, reordered, forged or recomputed, the last entries
    deleted, and a decision row edited, deleted or inserted outside signoff.
    """
    app_ = build_app(read_settings())
    try:
        report = app_.verify_audit(checkpoints)
        if as_json:
            print_json(inventory.audit_verify(report))
        elif report.breaks:
            for b in report.breaks:
                where = f"entry {b.seq}" if b.seq else "decisions"
                err.print(f"{where}: {b.reason}", markup=False)
            err.print(
                f"the audit log was tampered with ({len(report.breaks)} problem(s)); "
                f"checked {report.summary()}",
                markup=False,
            )
        else:
            out.print(f"audit log intact: {report.summary()}", markup=False)
        if report.breaks:
            raise typer.Exit(1)
    finally:
        app_.close()


@audit_app.command("show")
def audit_show(
    run_id: Annotated[str | None, typer.Argument(help="Only this run's events.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the audit log (all of it, or one run's)."""
    app_ = build_app(read_settings())
    try:
        rid = resolve_run(app_.store, run_id).id if run_id else None
        entries = [inventory.audit_entry(e) for e in app_.store.list_audit(rid)]
        if as_json:
            print_json(entries)
            return
        table = Table()
        for col in ("#", "when (UTC)", "event", "run", "actor", "details"):
            table.add_column(col, overflow="fold")
        for e in entries:
            details = ", ".join(
                f"{k}={v}" for k, v in e.data.items() if k not in ("model_digest", "report_digest")
            )
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.at))
            table.add_row(str(e.seq), when, e.event, e.run_id or "", e.actor or "", details[:200])
        out.print(table if entries else "the audit log is empty")
    finally:
        app_.close()


# ------------------------------------------------------------------------ server
def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not drive runs in this process.")
    ] = False,
    no_timers: Annotated[
        bool, typer.Option("--no-timers", help="Do not run gate timers in this process.")
    ] = False,
) -> None:
    """Serve the REST API, the decision links and the web UI; drive runs and gate timers."""
    import uvicorn

    from signoff.server import create_app
    from signoff.server.worker import Worker

    app_ = build_app(read_settings())
    worker = None
    if not (no_worker and no_timers):
        worker = Worker(app_, drive=not no_worker, timers=not no_timers)
    server_app = create_app(app_, worker=worker)
    out.print(
        f"signoff server on http://{host}:{port} (links use {app_.settings.base_url}); "
        f"database {app_.store.url}"
    )
    try:
        uvicorn.run(server_app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        app_.close()
