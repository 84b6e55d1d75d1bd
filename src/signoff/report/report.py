"""The review report a gate opens with: what the approver judges, stored with its digest.

It is written as ``report.json`` (the record; its sha256 goes into the gate and into every
decision) and ``report.html`` (the same content for people: self-contained, no script, no
external asset, readable on a phone). The same store state and ``now`` give the same bytes:
keys are sorted, lists keep the store's order and nothing reads the clock.
The keys of ``report.json`` are documented in ``report/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from signoff.domain.ports import ModelStore
from signoff.domain.ports_execution import ArtifactStore
from signoff.domain.records import ModelVersionRecord, RunRecord
from signoff.domain.specs import FlowSpec
from signoff.report.figures import figures_section
from signoff.report.plots import bar_chart_svg, confusion_svg, curve_svg
from signoff.report.sections import (
    Context,
    ReportStore,
    comparison_section,
    data_section,
    drift_section,
    leaderboards_section,
    model_view,
    reproducibility_section,
    summary_section,
    timeline_section,
    utc,
)
from signoff.stats.drift import SIGNIFICANT

__all__ = [
    "FORMAT",
    "build_report",
    "read_report",
    "render_html",
    "text_summary",
    "write_report",
]

#: ``report.json``'s ``format``; bumped when a documented key changes meaning or goes away.
FORMAT = "signoff.review/2"
_TEMPLATES = Path(__file__).parent / "templates"


def _champion_of(store: ModelStore, model: ModelVersionRecord | None) -> ModelVersionRecord | None:
    if model is None:
        return None
    current = store.aliases(model.name).get("champion")
    if not current or current == model.id:
        return None
    return store.get_model_version(current)


def build_report(
    store: ReportStore, run: RunRecord, spec: FlowSpec, model: ModelVersionRecord | None, now: float
) -> dict[str, Any]:
    """Every section of the report as plain data (what ``report.json`` holds)."""
    ctx = Context(
        store=store,
        run=run,
        spec=spec,
        task_runs=tuple(store.list_task_runs(run.id)),
        challenger=model,
        champion=_champion_of(store, model),
    )
    challenger = model_view(ctx, ctx.challenger)
    drift = drift_section(ctx)
    comparison = comparison_section(ctx)
    leaderboards = leaderboards_section(ctx)
    return {
        "format": FORMAT,
        "generated_at": now,
        "generated_at_utc": utc(now),
        "flow": {"name": spec.name, "hash": spec.spec_hash},
        "run": {
            "id": run.id,
            "started_by": run.started_by,
            "params": run.params,
            "created_at": utc(run.created_at),
        },
        "summary": summary_section(ctx, challenger, comparison, drift),
        "data": data_section(ctx),
        "drift": drift,
        "leaderboards": leaderboards,
        "challenger": challenger,
        "champion": model_view(ctx, ctx.champion),
        "comparison": comparison,
        "figures": figures_section(ctx, leaderboards),
        "reproducibility": reproducibility_section(ctx),
        "timeline": timeline_section(ctx),
        "trigger": _trigger_section(run),
    }


def _trigger_section(run: RunRecord) -> dict[str, Any] | None:
    """What started the run (a scheduled time, a rule and its evidence), from its facts."""
    trigger = run.facts.get("trigger")
    if not isinstance(trigger, Mapping):
        return None
    evidence = trigger.get("evidence") or {}
    return {
        "kind": trigger.get("kind"),
        "key": trigger.get("key"),
        "fired_at": trigger.get("fired_at"),
        "scheduled_for": trigger.get("scheduled_for"),
        "rule": evidence.get("rule"),
        "facts": {
            k: v for k, v in sorted(evidence.items()) if isinstance(v, str | int | float | bool)
        },
        "features": list(evidence.get("features") or []),
        "changes": evidence.get("changes"),
    }


def _finite(value: Any) -> Any:
    """The same data with NaN and infinities as ``None`` (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _trusted(svg: str) -> Markup:
    """Mark an SVG from ``plots`` as safe: its builders escape every text and attribute."""
    return Markup(svg)  # noqa: S704 - built by plots.py, which escapes all data it embeds


def _svgs(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's figures drawn as inline SVG (markup built and escaped by ``plots``)."""
    fig = report["figures"]
    models = [(role, fig[role]) for role in ("challenger", "champion") if fig.get(role)]
    out: dict[str, Any] = {"curves": [], "confusion": [], "importance": None, "candidates": []}
    roc = [(f"{role} {m['label']}", m["roc"]["points"]) for role, m in models if m["roc"]]
    if roc:
        out["curves"].append(
            _trusted(
                curve_svg(
                    "ROC curve",
                    roc,
                    x_label="false positive rate",
                    y_label="true positive rate",
                    diagonal=True,
                )
            )
        )
    pr = [(f"{role} {m['label']}", m["pr"]["points"]) for role, m in models if m["pr"]]
    if pr:
        out["curves"].append(
            _trusted(curve_svg("Precision-recall", pr, x_label="recall", y_label="precision"))
        )
    for role, m in models:
        title = f"{role} {m['label']} at {m['confusion']['threshold']:g}"
        out["confusion"].append(_trusted(confusion_svg(title, m["confusion"])))
    importance = fig.get("feature_importance")
    if importance and importance["features"]:
        bars = [(f["name"], f["importance"]) for f in importance["features"]]
        out["importance"] = _trusted(
            bar_chart_svg(f"Feature importance, {importance['label']}", bars)
        )
    for chart in fig["candidate_metrics"]:
        bars = [(b["label"], b["value"]) for b in chart["bars"]]
        winner = next((b["label"] for b in chart["bars"] if b["winner"]), None)
        out["candidates"].append(
            _trusted(bar_chart_svg(f"{chart['metric']} per candidate", bars, highlight=winner))
        )
    return out


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (autoescaped; figures as inline SVG)."""
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(r=report, svg=_svgs(report))


def write_report(
    store: ReportStore,
    run: RunRecord,
    spec: FlowSpec,
    model: ModelVersionRecord | None,
    folder: Path,
    now: float,
    artifacts: ArtifactStore | None = None,
) -> tuple[Path, str]:
    """Write report.json and report.html into ``folder``; return the JSON path and its digest.

    With an artifact store, both files are stored there too: the digest the gate records
    is then the store's address of report.json (an approver on another machine reads it).
    """
    report = _finite(build_report(store, run, spec, model, now))
    folder.mkdir(parents=True, exist_ok=True)
    body = (json.dumps(report, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    html = render_html(report).encode()
    path = folder / "report.json"
    path.write_bytes(body)
    (folder / "report.html").write_bytes(html)
    digest = hashlib.sha256(body).hexdigest()
    if artifacts is not None:  # content-addressed: report.json is stored under ``digest``
        artifacts.put_bytes(body)
        artifacts.put_bytes(html)
    return path, digest


def read_report(path: Path) -> tuple[dict[str, Any], str]:
    """A stored ``report.json`` and the sha256 of its bytes."""
    body = path.read_bytes()
    return json.loads(body), hashlib.sha256(body).hexdigest()


def _fmt(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def text_summary(report: Mapping[str, Any], top: int = 3) -> list[str]:
    """A few plain lines: what is reviewed, headline, verdict, drift, the top candidates."""
    summary = report.get("summary")
    if not isinstance(summary, Mapping):  # a report written before summaries existed
        flow, run = report.get("flow") or {}, report.get("run") or {}
        return [
            f"{flow.get('name')} run {run.get('id')}: a {report.get('format')} report "
            "without a summary; open the HTML"
        ]
    lines = [f"{summary.get('flow')} run {summary.get('run_id')} by {summary.get('started_by')}"]
    challenger = summary.get("challenger")
    if challenger:
        params = ", ".join(f"{k}={v}" for k, v in challenger.get("hyperparameters", {}).items())
        lines.append(
            f"challenger: {challenger.get('label')} {challenger.get('algorithm')} ({params})"
        )
    lines.append(f"champion:   {summary.get('champion') or 'none'}")
    trigger = report.get("trigger")
    if isinstance(trigger, Mapping):
        why = trigger.get("rule") or trigger.get("scheduled_for") or trigger.get("key")
        lines.append(f"started by: {trigger.get('kind')}: {why}")
    headline = summary.get("headline") or {}
    if headline.get("metric"):
        lines.append(
            f"headline:   {headline['metric']} ({headline.get('objective')}) "
            f"{_fmt(headline.get('challenger'))} vs {_fmt(headline.get('champion'))}, "
            f"delta {_fmt(headline.get('delta'), '+.4f')}"
        )
    lines.append(f"verdict:    {summary.get('verdict')}: {summary.get('verdict_line')}")
    drift = report.get("drift") or {}
    if not drift.get("computed"):
        lines.append(f"drift:      not computed ({drift.get('reason')})")
    elif drift.get("flag"):
        flagged = ", ".join(summary.get("drifted_features") or [])
        lines.append(
            f"drift:      FLAGGED vs {drift.get('reference')}: PSI > {SIGNIFICANT} on {flagged}"
        )
    else:
        lines.append(
            f"drift:      none significant vs {drift.get('reference')} (PSI <= {SIGNIFICANT})"
        )
    for board in report.get("leaderboards") or []:
        metric = board.get("ranked_by")
        lines.append(f"candidates ({board.get('task')}, by {metric}):")
        for rank, row in enumerate(board.get("rows", [])[:top], start=1):
            mark = "  <- winner" if row.get("winner") else ""
            value = (row.get("metrics") or {}).get(metric)
            lines.append(
                f"  {rank}. {row.get('label')} {row.get('algorithm', '')} "
                f"{metric}={_fmt(value)} {row.get('note', '')}{mark}"
            )
    return lines
