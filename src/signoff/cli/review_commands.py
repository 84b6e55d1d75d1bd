"""``signoff review RUN``: where a run's review report is, and what it says in a few lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from signoff.bootstrap import App, build_app
from signoff.bootstrap.lookup import resolve_run
from signoff.cli.console import JsonOpt, out, read_settings
from signoff.domain.records import GateRecord
from signoff.errors import NotFoundError
from signoff.report.report import read_report, text_summary

__all__ = ["register", "review", "review_view"]


def register(cli: typer.Typer) -> None:
    """Add ``review`` to ``cli``."""
    cli.command()(review)


def _gate_with_report(app_: App, run_id: str) -> GateRecord:
    """The run's latest gate that has a report (a clear reason when there is none)."""
    run_ = resolve_run(app_.store, run_id)
    gates = [g for g in app_.store.gates_of_run(run_.id) if g.report_path]
    if not gates:
        raise NotFoundError(f"run {run_.id} has no review report yet (it is {run_.state})")
    return max(gates, key=lambda g: g.opened_at)


def review_view(gate: GateRecord) -> dict[str, Any]:
    """The report's place, digest check and summary, as one JSON-ready document."""
    json_path = Path(gate.report_path or "")
    if not json_path.is_file():
        raise NotFoundError(f"the review report {json_path} is gone")
    report, digest = read_report(json_path)
    leaderboards = report.get("leaderboards") or []
    return {
        "run_id": gate.run_id,
        "gate_id": gate.id,
        "report_json": str(json_path),
        "report_html": str(json_path.with_suffix(".html")),
        "digest": digest,
        "recorded_digest": gate.report_digest,
        "digest_matches": digest == gate.report_digest,
        "summary": report.get("summary"),
        "drift": {k: report.get("drift", {}).get(k) for k in ("computed", "flag", "reason")},
        "top_candidates": [
            {k: row.get(k) for k in ("rank", "label", "algorithm", "metrics", "eligible")}
            for board in leaderboards
            for row in board.get("rows", [])[:3]
        ],
        "lines": text_summary(report),
    }


def review(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    as_json: JsonOpt = False,
) -> None:
    """Show where a run's review report is (HTML, JSON, digest) and what it concludes."""
    app_ = build_app(read_settings())
    try:
        view = review_view(_gate_with_report(app_, run_id))
    finally:
        app_.close()
    if as_json:
        sys.stdout.write(json.dumps(view, indent=2) + "\n")
        return
    out.print(f"report: {view['report_html']}", markup=False)
    out.print(f"json:   {view['report_json']}", markup=False)
    check = "matches the gate" if view["digest_matches"] else "DOES NOT match the gate's"
    out.print(f"sha256: {view['digest']} ({check})", markup=False)
    for line in view["lines"]:
        out.print(line, markup=False)
    if not view["digest_matches"]:
        raise typer.Exit(1)
