"""What the CLI prints: JSON documents for scripts and Rich tables for people.

Everything that comes from data (names, states, reasons, comments, paths) is printed as
:class:`rich.text.Text`, never as markup: a ``[`` in a reason or a state without a style must
print as it is, not raise ``MarkupError`` or restyle the line.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from signoff.cli.run_table import STATE_STYLE
from signoff.domain.ports import Store
from signoff.domain.records import RunRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.endpoints.local import LocalEndpointRunner

__all__ = [
    "endpoint_rows",
    "model_rows",
    "open_gates",
    "print_detail",
    "print_endpoints",
    "print_gates",
    "print_models",
    "print_outcome",
    "print_runs",
    "run_detail",
    "run_row",
    "run_summary",
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


def run_row(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "flow": run.flow_name,
        "state": run.state.value,
        "started_by": run.started_by,
        "created_at": run.created_at,
        "ended_at": run.ended_at,
        "reason": run.reason,
    }


def _gate_views(store: Store, run_id: str) -> list[dict[str, Any]]:
    views = []
    for gate in store.gates_of_run(run_id):
        tr = store.get_task_run(gate.task_run_id)
        decisions = store.list_decisions(gate.id)
        views.append(
            {
                "gate_id": gate.id,
                "task": tr.task_name,
                "state": tr.state.value,
                "targets": list(gate.targets),
                "quorum": gate.quorum,
                "model_version_id": gate.model_version_id,
                "model_digest": gate.model_digest,
                "report": gate.report_path,
                "report_html": str(Path(gate.report_path).with_suffix(".html"))
                if gate.report_path
                else None,
                "report_digest": gate.report_digest,
                "opened_at": gate.opened_at,
                "expires_at": gate.expires_at,
                "decisions": [
                    {
                        "actor": d.actor,
                        "decision": d.decision,
                        "comment": d.comment,
                        "channel": d.channel,
                        "at": d.at,
                    }
                    for d in decisions
                ],
            }
        )
    return views


def run_summary(store: Store, run: RunRecord) -> dict[str, Any]:
    """The short JSON of a run (``run --json``): id, state, open gate, endpoints deployed."""
    gates = _gate_views(store, run.id)
    deployed = [
        tr.result
        for tr in store.list_task_runs(run.id)
        if tr.state is TaskRunState.SUCCEEDED and "endpoint" in tr.result
    ]
    return {
        **run_row(run),
        "gate": next((g for g in gates if g["state"] == "waiting_for_approval"), None),
        "deployments": deployed,
    }


def run_detail(store: Store, run: RunRecord) -> dict[str, Any]:
    """Everything ``show`` tells: the run, each task run with params and metrics, gates."""
    trs = store.list_task_runs(run.id)
    final: dict[str, dict[str, float]] = {}
    for m in store.list_metrics([tr.id for tr in trs]):
        final.setdefault(m.task_run_id, {})[m.key] = m.value
    spec = store.get_flow(run.flow_hash)
    outputs = {tr.id: _output_fingerprint(store, tr.id) for tr in trs if tr.kind.runs_command}
    by_task: dict[str, list[Any]] = {}
    for tr in trs:
        by_task.setdefault(tr.task_name, []).append(tr)
    tasks = []
    for tr in trs:
        upstream = [u for name in spec.task(tr.task_name).depends_on for u in by_task.get(name, [])]
        tasks.append(
            {
                "task_run_id": tr.id,
                "task": tr.task_name,
                "label": tr.label,
                "kind": tr.kind.value,
                "state": tr.state.value,
                "attempt": tr.attempt,
                "params": tr.params,
                "logged_params": store.logged_params(tr.id) if tr.kind.runs_command else {},
                "metrics": final.get(tr.id, {}),
                "reason": tr.reason,
                "started_at": tr.started_at,
                "ended_at": tr.ended_at,
                "duration_seconds": (tr.ended_at - tr.started_at)
                if tr.started_at is not None and tr.ended_at is not None
                else None,
                "work_dir": tr.work_dir,
                "outputs": outputs.get(tr.id),
                # the data it read: each upstream output's content fingerprint
                "inputs": {u.label: outputs[u.id] for u in upstream if u.id in outputs},
                "result": tr.result,
            }
        )
    return {
        **run_row(run),
        "flow_hash": run.flow_hash,
        "params": run.params,
        "work_dir": run.work_dir,
        "facts": run.facts,
        "tasks": tasks,
        "gates": _gate_views(store, run.id),
    }


def _output_fingerprint(store: Store, task_run_id: str) -> dict[str, Any]:
    """What a task run produced: its files' combined sha256, count and size."""
    import hashlib

    artifacts = store.list_artifacts(task_run_id)
    h = hashlib.sha256()
    for a in sorted(artifacts, key=lambda a: a.path):
        h.update(f"{a.path}\0{a.sha256}\0".encode())
    return {
        "digest": h.hexdigest(),
        "files": len(artifacts),
        "bytes": sum(a.size for a in artifacts),
    }


def print_runs(console: Console, runs: list[RunRecord]) -> None:
    table = Table()
    for col in ("run", "flow", "state", "started by", "created", "reason"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            *_cells(
                r.id,
                r.flow_name,
                _styled(r.state.value),
                r.started_by,
                _ago(r.created_at),
                r.reason,
            )
        )
    console.print(table if runs else "no runs yet")


def print_detail(console: Console, d: dict[str, Any]) -> None:
    console.print(
        Text.assemble(
            "run ",
            _bold(d["run_id"]),
            f" · flow {d['flow']} · ",
            _styled(d["state"]),
            f" · {d['reason']}" if d["reason"] else "",
        )
    )
    table = Table()
    for col in ("task", "state", "attempt", "params", "metrics", "note"):
        table.add_column(col, overflow="fold")
    for t in d["tasks"]:
        metrics = " ".join(
            f"{k}={v:.4g}" for k, v in t["metrics"].items() if k not in ("fit_seconds",)
        )
        params = " ".join(f"{k}={v}" for k, v in t["params"].items() if k not in d["params"])
        table.add_row(
            *_cells(t["label"], _styled(t["state"]), t["attempt"], params, metrics, t["reason"])
        )
    console.print(table)
    for g in d["gates"]:
        console.print(
            Text.assemble(
                "gate ",
                _bold(g["task"]),
                " ",
                _styled(g["state"]),
                f": approvers {', '.join(g['targets'])} (quorum {g['quorum']})",
            )
        )
        if g["report_html"]:
            console.print(Text(f"  review report: {g['report_html']}"))
        for dec in g["decisions"]:
            comment = f": {dec['comment']}" if dec["comment"] else ""
            line = f"  {dec['actor']} {dec['decision']} via {dec['channel']}{comment}"
            console.print(Text(line))


def print_outcome(console: Console, store: Store, run: RunRecord, cmd: str) -> None:
    """The closing lines after a run moved: where it stands and what to do next."""
    console.print(
        Text.assemble(
            "run ",
            _bold(run.id),
            " is ",
            _styled(run.state.value),
            f" ({run.reason})" if run.reason and run.state is not RunState.SUCCEEDED else "",
        )
    )
    if run.state is RunState.WAITING_FOR_APPROVAL:
        for g in _gate_views(store, run.id):
            if g["state"] != "waiting_for_approval":
                continue
            console.print(
                Text.assemble(
                    "\nThe run waits at gate ",
                    _bold(g["task"]),
                    f" for {', '.join(g['targets'])}; it holds no process while it waits.",
                )
            )
            if g["report_html"]:
                console.print(Text(f"  review report: {g['report_html']}"))
            first = g["targets"][0]
            for line in (
                f"  approve: {cmd} approve {run.id} --as {first} --comment 'looks good'",
                f"  reject:  {cmd} reject {run.id} --as {first} --comment 'why not'",
                f"  details: {cmd} show {run.id}",
            ):
                console.print(Text(line))
    for tr in store.list_task_runs(run.id):
        if tr.state is TaskRunState.SUCCEEDED and "endpoint" in tr.result:
            r = tr.result
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


def open_gates(store: Store) -> list[dict[str, Any]]:
    rows = []
    for run in store.list_runs(limit=200):
        if run.state is not RunState.WAITING_FOR_APPROVAL:
            continue
        for g in _gate_views(store, run.id):
            if g["state"] == "waiting_for_approval":
                rows.append({"run_id": run.id, "flow": run.flow_name, **g})
    return rows


def print_gates(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no gate is waiting")
        return
    table = Table()
    for col in ("run", "flow", "gate", "approvers", "quorum", "opened", "report"):
        table.add_column(col, overflow="fold")
    for g in rows:
        table.add_row(
            *_cells(
                g["run_id"],
                g["flow"],
                g["task"],
                ", ".join(g["targets"]),
                g["quorum"],
                _ago(g["opened_at"]),
                g["report_html"],
            )
        )
    console.print(table)


def endpoint_rows(store: Store, runner: LocalEndpointRunner) -> list[dict[str, Any]]:
    rows = []
    for ep in store.list_endpoints():
        model = store.get_model_version(ep.model_version_id) if ep.model_version_id else None
        alive = bool(ep.pid and runner.is_alive(ep.pid))
        rows.append(
            {
                "name": ep.name,
                "url": ep.url,
                "state": ep.state if alive or ep.state == "stopped" else "down",
                "pid": ep.pid,
                "model_version": model.label if model else None,
                "model_version_id": ep.model_version_id,
                "digest": model.digest if model else None,
                "updated_at": ep.updated_at,
            }
        )
    return rows


def print_endpoints(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no endpoints yet")
        return
    table = Table()
    for col in ("endpoint", "url", "state", "model version", "updated"):
        table.add_column(col)
    for r in rows:
        state = str(r["state"])
        table.add_row(
            *_cells(
                r["name"],
                r["url"],
                Text(state, style=ENDPOINT_STYLE.get(state, "")),
                r["model_version"],
                _ago(r["updated_at"]),
            )
        )
    console.print(table)


def model_rows(store: Store, name: str | None) -> list[dict[str, Any]]:
    rows = []
    aliases: dict[str, dict[str, str]] = {}
    for mv in store.list_model_versions(name):
        if mv.name not in aliases:
            aliases[mv.name] = store.aliases(mv.name)
        tags = sorted(a for a, v in aliases[mv.name].items() if v == mv.id)
        rows.append(
            {
                "id": mv.id,
                "name": mv.name,
                "version": mv.version,
                "label": mv.label,
                "flavor": mv.flavor,
                "aliases": tags,
                "metrics": mv.metrics,
                "run_id": mv.run_id,
                "digest": mv.digest,
            }
        )
    return rows


def print_models(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no models registered yet")
        return
    table = Table()
    for col in ("model", "flavor", "aliases", "run", "metrics"):
        table.add_column(col, overflow="fold")
    for r in rows:
        metrics = " ".join(
            f"{k}={v:.4g}" for k, v in r["metrics"].items() if k in ("auc", "ndcg_at_10")
        )
        table.add_row(
            *_cells(r["label"], r["flavor"], ", ".join(r["aliases"]), r["run_id"], metrics)
        )
    console.print(table)


def print_alias_history(console: Console, moves: list[dict[str, Any]]) -> None:
    if not moves:
        console.print("no alias was ever set")
        return
    table = Table()
    for col in ("when", "alias", "model version", "by", "why"):
        table.add_column(col, overflow="fold")
    for m in moves:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m["at"]))
        version = m["model_version"] or m["model_version_id"]
        table.add_row(*_cells(when, m["alias"], version, m["actor"], m["reason"]))
    console.print(table)


def _resolve_task_runs(store: Store, item: str) -> list[tuple[str, Any]]:
    """A run (its command tasks), a task run id, or RUN:LABEL -> (column title, task run)."""
    from signoff.errors import NotFoundError

    run_part, sep, label = item.partition(":")
    if sep:
        run = store.get_run(run_part)
        found = [
            tr for tr in store.list_task_runs(run.id) if label in (tr.label, tr.key, tr.task_name)
        ]
        if not found:
            raise NotFoundError(f"run {run.id} has no task {label!r}")
        return [(f"{tr.label}@{run.id[:6]}", tr) for tr in found]
    try:
        tr = store.get_task_run(item)
        return [(f"{tr.label}@{tr.run_id[:6]}", tr)]
    except NotFoundError:
        run = store.get_run(item)
        return [
            (f"{tr.label}@{run.id[:6]}", tr)
            for tr in store.list_task_runs(run.id)
            if tr.kind.runs_command
        ]


def comparison(store: Store, items: list[str]) -> list[dict[str, Any]]:
    """One column per task run: params (given and logged) and final metrics."""
    columns = []
    for item in items:
        for title, tr in _resolve_task_runs(store, item):
            metrics: dict[str, float] = {}
            for m in store.list_metrics([tr.id]):
                metrics[m.key] = m.value
            columns.append(
                {
                    "column": title,
                    "task_run_id": tr.id,
                    "run_id": tr.run_id,
                    "state": tr.state.value,
                    "params": {**tr.params, **store.logged_params(tr.id)},
                    "metrics": metrics,
                }
            )
    return columns


def print_comparison(console: Console, columns: list[dict[str, Any]]) -> None:
    if not columns:
        console.print("nothing to compare")
        return
    table = Table()
    table.add_column("")
    for c in columns:
        table.add_column(Text(str(c["column"])), overflow="fold")
    params = sorted({k for c in columns for k in c["params"]})
    metrics = sorted({k for c in columns for k in c["metrics"]})
    for key in params:
        values = [str(c["params"].get(key, "")) for c in columns]
        style = "" if len(set(values)) == 1 else "bold"
        table.add_row(Text.assemble(("param", "dim"), f" {key}"), *(Text(v, style) for v in values))
    for key in metrics:
        values = [c["metrics"].get(key) for c in columns]
        numbers = [v for v in values if v is not None]
        best = max(numbers) if numbers else None
        table.add_row(
            Text.assemble(("metric", "dim"), f" {key}"),
            *(
                Text("")
                if v is None
                else Text(f"{v:.6g}", "green" if v == best and len(numbers) > 1 else "")
                for v in values
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
