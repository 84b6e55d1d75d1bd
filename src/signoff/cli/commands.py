"""The ``signoff`` command, built in one place from what each command module adds.

Every command module exposes ``register(cli)`` for its top-level commands, and its command
groups as Typer sub-apps; :func:`build_cli` adds them in the order ``signoff --help`` lists
them (Typer lists commands first, then groups, each in the order they were added). Nothing
registers itself by being imported.
"""

from __future__ import annotations

import typer

from signoff.cli import (
    decide_commands,
    flow_commands,
    gate_commands,
    kube_commands,
    login_commands,
    model_commands,
    review_commands,
    run_commands,
    schedule_commands,
    serving_commands,
    worker_commands,
)

__all__ = ["app", "build_cli"]


def build_cli() -> typer.Typer:
    """A complete ``signoff`` Typer app: every command and every command group."""
    cli = typer.Typer(
        name="signoff",
        help="Machine-learning pipelines with a human sign-off before production.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for module in (
        run_commands,
        decide_commands,
        model_commands,
        flow_commands,
        schedule_commands,
        serving_commands,
        gate_commands,
        worker_commands,
        login_commands,
        review_commands,
    ):
        module.register(cli)
    groups = (
        ("endpoints", serving_commands.endpoints_app),
        ("gates", decide_commands.gates_app),
        ("schedule", schedule_commands.schedule_app),
        ("triggers", schedule_commands.triggers_app),
        ("users", gate_commands.users_app),
        ("groups", gate_commands.groups_app),
        ("audit", gate_commands.audit_app),
        ("kube", kube_commands.kube_app),
    )
    for name, group in groups:
        cli.add_typer(group, name=name)
    return cli


app = build_cli()
"""The ``signoff`` app (what the ``signoff`` script and ``python -m signoff.cli.main`` run)."""
