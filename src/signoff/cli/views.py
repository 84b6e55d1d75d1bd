"""What the CLI prints for people: Rich tables of the read models (:mod:`signoff.views`).

Local and remote mode build the same models (from the store, or from the server's JSON),
so both print the same lines; ``--json`` prints the models themselves.

Everything that comes from data (names, states, reasons, comments, paths) is printed as
:class:`rich.text.Text`, never as markup: a ``[`` in a reason or a state without a style must
print as it is, not raise ``MarkupError`` or restyle the line.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from signoff.cli.run_table import STATE_STYLE
from signoff.domain.states import RunState
from signoff.views.models import (
    AliasMove,
    CompareColumn,
    EndpointOut,
    GateRow,
    ModelRow,
    RunDetail,
    RunRow,
)

__all__ = [
    "ENDPOINT_STYLE",
    "print_alias_history",
    "print_comparison",
    "print_detail",
    "print_endpoints",
    "print_gates",
    "print_models",
    "print_outcome",
    "print_reproduction",
    "print_runs",
]


ENDPOINT_STYLE = {
    "serving": "green",
    "starting": "cyan",
    "stopped": "dim",
    "down": "bold red",
    "failed": "bold red",
}
"""How ``signoff endpoints`` colours an endpoint's state; any other state prints plain."""


def _styled(state: str) -> Text:
    """A run, task or gate state, coloured when it has a style (any string prints)."""
    return Text(str(state), style=STATE_STYLE.get(state, ""))


def _cells(*values: object) -> list[Text]:
    """Table cells shown as they are (None as empty)."""
    return [v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in values]


def _bold(value: object) -> tuple[str, str]:
    return (str(value), "bold")


def _ago(ts: float) -> str:
    delta = max(0.0, time.time() - ts)
    if delta < 60:
        return f"{delta:.0f}s ago"
    if delta < 3600:
        return f"{delta / 60:.0f}m ago"
    if delta < 86400:
        return f"{delta / 3600:.1f}h ago"
    return f"{delta / 86400:.1f}d ago"


def _metric(value: float | None) -> str:
    """A metric in a table cell; null (a non-finite value) prints as nan."""
    return "nan" if value is None else f"{value:.4g}"


def print_runs(console: Console, runs: list[RunRow]) -> None:
    table = Table()
    for col in ("run", "flow", "state", "started by", "created", "reason"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            *_cells(
                r.run_id,
                r.flow,
                _styled(r.state.value),
                r.started_by,
                _ago(r.created_at),
                r.reason,
            )
        )
    console.print(table if runs else "no runs yet")


def print_detail(console: Console, d: RunDetail) -> None:
    console.print(
        Text.assemble(
            "run ",
            _bold(d.run_id),
            f" · flow {d.flow} · ",
            _styled(d.state.value),
            f" · {d.reason}" if d.reason else "",
        )
    )
    table = Table()
    for col in ("task", "state", "attempt", "params", "metrics", "note"):
        table.add_column(col, overflow="fold")
    for t in d.tasks:
        metrics = " ".join(
            f"{k}={_metric(v)}" for k, v in t.metrics.items() if k not in ("fit_seconds",)
        )
        params = " ".join(f"{k}={v}" for k, v in t.params.items() if k not in d.params)
        table.add_row(*_cells(t.label, _styled(t.state), t.attempt, params, metrics, t.reason))
    console.print(table)
    for g in d.gates:
        console.print(
            Text.assemble(
                "gate ",
                _bold(g.task),
                " ",
                _styled(g.state),
                f": approvers {', '.join(g.targets)} (quorum {g.quorum})",
            )
        )
        if g.report_html:
            console.print(Text(f"  review report: {g.report_html}"))
        for dec in g.decisions:
            comment = f": {dec.comment}" if dec.comment else ""
            console.print(Text(f"  {dec.actor} {dec.decision} via {dec.channel}{comment}"))


def print_outcome(console: Console, d: RunDetail, cmd: str, *, name_approver: bool) -> None:
    """The closing lines after a run moved: where it stands and what to do next.

    ``name_approver`` adds ``--as`` to the suggested decisions (local mode; a server decides
    as the token's user)."""
    console.print(
        Text.assemble(
            "run ",
            _bold(d.run_id),
            " is ",
            _styled(d.state.value),
            f" ({d.reason})" if d.reason and d.state is not RunState.SUCCEEDED else "",
        )
    )
    if d.state is RunState.WAITING_FOR_APPROVAL:
        for g in d.gates:
            if g.state != RunState.WAITING_FOR_APPROVAL.value:
                continue
            console.print(
                Text.assemble(
                    "\nThe run waits at gate ",
                    _bold(g.task),
                    f" for {', '.join(g.targets)}; it holds no process while it waits.",
                )
            )
            if g.report_html:
                console.print(Text(f"  review report: {g.report_html}"))
            who = f" --as {g.targets[0]}" if name_approver and g.targets else ""
            for line in (
                f"  approve: {cmd} approve {d.run_id}{who} --comment 'looks good'",
                f"  reject:  {cmd} reject {d.run_id}{who} --comment 'why not'",
                f"  details: {cmd} show {d.run_id}",
            ):
                console.print(Text(line))
    for t in d.tasks:
        if t.state == "succeeded" and "endpoint" in t.result:
            r = t.result
            console.print(
                Text.assemble(
                    "endpoint ",
                    _bold(r["endpoint"]),
                    f" serves {r['model_version']} at {r['url']}\n",
                    f"  try: curl -s -X POST {r['url']}/predict "
                    "-H 'content-type: application/json' "
                    "-d @request.json   (see examples/recsys/README.md)",
                )
            )


def print_gates(console: Console, rows: list[GateRow]) -> None:
    if not rows:
        console.print("no gate is waiting")
        return
    table = Table()
    for col in ("run", "flow", "gate", "approvers", "quorum", "opened", "report"):
        table.add_column(col, overflow="fold")
    for g in rows:
        table.add_row(
            *_cells(
                g.run_id,
                g.flow,
                g.task,
                ", ".join(g.targets),
                g.quorum,
                _ago(g.opened_at),
                g.report_html,
            )
        )
    console.print(table)


def print_endpoints(console: Console, rows: list[EndpointOut]) -> None:
    if not rows:
        console.print("no endpoints yet")
        return
    table = Table()
    for col in ("endpoint", "url", "state", "model version", "updated"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *_cells(
                r.name,
                r.url,
                Text(r.state, style=ENDPOINT_STYLE.get(r.state, "")),
                r.model_version,
                _ago(r.updated_at),
            )
        )
    console.print(table)


def print_models(console: Console, rows: list[ModelRow]) -> None:
    if not rows:
        console.print("no models registered yet")
        return
    table = Table()
    for col in ("model", "flavor", "aliases", "run", "metrics"):
        table.add_column(col, overflow="fold")
    for r in rows:
        metrics = " ".join(
            f"{k}={_metric(v)}" for k, v in r.metrics.items() if k in ("auc", "ndcg_at_10")
        )
        table.add_row(*_cells(r.label, r.flavor, ", ".join(r.aliases), r.run_id, metrics))
    console.print(table)


def print_alias_history(console: Console, moves: list[AliasMove]) -> None:
    if not moves:
        console.print("no alias was ever set")
        return
    table = Table()
    for col in ("when", "alias", "model version", "by", "why"):
        table.add_column(col, overflow="fold")
    for m in moves:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.at))
        version = m.model_version or m.model_version_id
        table.add_row(*_cells(when, m.alias, version, m.actor, m.reason))
    console.print(table)


def print_comparison(console: Console, columns: list[CompareColumn]) -> None:
    if not columns:
        console.print("nothing to compare")
        return
    table = Table()
    table.add_column("")
    for c in columns:
        table.add_column(Text(c.column), overflow="fold")
    params = sorted({k for c in columns for k in c.params})
    metrics = sorted({k for c in columns for k in c.metrics})
    for key in params:
        values = [str(c.params.get(key, "")) for c in columns]
        style = "" if len(set(values)) == 1 else "bold"
        table.add_row(Text.assemble(("param", "dim"), f" {key}"), *(Text(v, style) for v in values))
    for key in metrics:
        scores = [c.metrics.get(key) for c in columns]
        numbers = [v for v in scores if v is not None]
        best = max(numbers) if numbers else None
        table.add_row(
            Text.assemble(("metric", "dim"), f" {key}"),
            *(
                Text("")
                if v is None
                else Text(f"{v:.6g}", "green" if v == best and len(numbers) > 1 else "")
                for v in scores
            ),
        )
    console.print(table)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.10g}"


def print_reproduction(console: Console, report: Any) -> None:
    data = report.to_json()
    title = f"run {data['original_run']} reproduced as {data['reproduction_run']}"
    table = Table(title=Text(title))
    for col in ("task", "metric", "original", "reproduced", ""):
        table.add_column(col)
    for m in data["metrics"]:
        verdict = Text("match", "green") if m["match"] else Text("differs", "bold red")
        table.add_row(
            *_cells(
                m["task"], m["metric"], _number(m["original"]), _number(m["reproduced"]), verdict
            )
        )
    console.print(table)
    for a in data["artifacts"]:
        verdict = Text("identical") if a["match"] else Text("differ", "bold red")
        console.print(Text.assemble(f"data {a['task']}: outputs ", verdict))
    if data["environment_differences"]:
        console.print("environment differences:")
        for d in data["environment_differences"]:
            console.print(Text(f"  {d['what']}: {d['original']} -> {d['now']}"))
    else:
        console.print("environment: same python, platform and packages")
    total = len(data["metrics"])
    bad = sum(1 for m in data["metrics"] if not m["match"])
    if report.exact:
        tolerance = f": {total} metrics within tolerance {data['tolerance']:g}"
        console.print(Text.assemble(("reproduced exactly", "green"), tolerance))
    else:
        differ = f": {bad} of {total} metrics differ; run state {data['state']}"
        console.print(Text.assemble(("not reproduced", "bold red"), differ))
