"""Commands about what runs produced: models (and alias history), compare, reproduce."""

from __future__ import annotations

from typing import Annotated

import typer

from signoff.bootstrap import build_app
from signoff.bootstrap.lookup import resolve_compare_item, resolve_run
from signoff.cli import views
from signoff.cli.console import JsonOpt, err, out, print_json, read_settings, settings_user
from signoff.cli.progress import ProgressObserver
from signoff.errors import SignoffError
from signoff.views import build, inventory
from signoff.views.models import AliasMove

__all__ = ["register"]


def register(cli: typer.Typer) -> None:
    """Add ``models``, ``compare`` and ``reproduce`` to ``cli``."""
    for command in (models, compare, reproduce):
        cli.command()(command)


def models(
    name: Annotated[str | None, typer.Argument(help="Model name.")] = None,
    history: Annotated[
        bool, typer.Option("--history", help="Who moved each alias, when and why.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List registered model versions and their aliases (champion, challenger)."""
    app_ = build_app(read_settings())
    try:
        if history:
            if name is None:
                raise SignoffError("--history needs a model NAME")
            moves = app_.store.alias_history(name)
            labels = {mv.id: mv.label for mv in app_.store.list_model_versions(name)}
            for move in moves:
                move["model_version"] = labels.get(move["model_version_id"])
            if as_json:
                print_json(moves)
            else:
                views.print_alias_history(out, [AliasMove.model_validate(m) for m in moves])
            return
        rows = inventory.model_rows(app_.store, name)
        if as_json:
            print_json(rows)
        else:
            views.print_models(out, rows)
    finally:
        app_.close()


def compare(
    items: Annotated[
        list[str],
        typer.Argument(help="Runs (all their tasks), task run ids, or RUN:TASK labels."),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Params and metrics of task runs side by side."""
    app_ = build_app(read_settings())
    try:
        full = [resolve_compare_item(app_.store, item) for item in items]
        columns = build.comparison(app_.store, full)
        if as_json:
            print_json(columns)
        else:
            views.print_comparison(out, columns)
    finally:
        app_.close()


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

    settings = read_settings()
    app_ = build_app(settings)
    try:
        original = resolve_run(app_.store, run_id)
        if not as_json:
            out.print(f"reproducing run {original.id} of flow {original.flow_name}")
            app_.engine.observer = ProgressObserver(err)  # plain lines for the new run
        report = run_reproduction(
            app_.engine, original.id, started_by=settings_user(settings), tolerance=tolerance
        )
        if as_json:
            print_json(report.to_json())
        else:
            views.print_reproduction(out, report)
        if not report.exact:
            raise typer.Exit(1)
    finally:
        app_.close()
