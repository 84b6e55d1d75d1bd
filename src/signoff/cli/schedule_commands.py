"""Commands for what starts runs by itself: schedules, the scheduler loop, triggers, firings.

``signoff schedule add|list|pause|resume|remove``, ``signoff scheduler`` (the loop; one per
SQLite database), ``signoff triggers list|add|remove|fire-check`` and ``signoff firings``.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.table import Table

from signoff.bootstrap import App, build_app
from signoff.cli.console import JsonOpt, out, print_json, read_settings
from signoff.errors import SignoffError
from signoff.scheduling import (
    Scheduler,
    SchedulerLock,
    evaluation_view,
    firing_view,
    schedule_view,
)
from signoff.spec import load_flow, parse_rules

__all__ = ["register", "schedule_app", "triggers_app"]

schedule_app = typer.Typer(
    help="Flows that start by themselves: cron schedules in a time zone.",
    invoke_without_command=True,
)
triggers_app = typer.Typer(
    help="Rules that start flows: drift, quality, error rate, new data, webhook.",
    invoke_without_command=True,
)

FlowArg = Annotated[str, typer.Argument(help="The flow's name (as `schedule list` shows it).")]


def register(cli: typer.Typer) -> None:
    """Add ``scheduler`` and ``firings`` to ``cli`` (the groups are added by the builder)."""
    for command in (scheduler, firings):
        cli.command()(command)


def _scheduler(app_: App) -> Scheduler:
    return Scheduler(
        app_.store, app_.engine, app_.engine.clock, endpoints=app_.endpoints, role="cli"
    )


def _local(text: str) -> str:
    """``2026-03-30T03:00:00+02:00`` -> ``2026-03-30 03:00:00+02:00``."""
    return text.replace("T", " ", 1)


# ----------------------------------------------------------------------- schedule
@schedule_app.callback()
def schedule(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List schedules with their next fire times (the same as `schedule list`)."""
    if ctx.invoked_subcommand is None:
        schedule_list(as_json=as_json)


@schedule_app.command("list")
def schedule_list(
    as_json: JsonOpt = False,
    count: Annotated[int, typer.Option("--next", help="How many fire times to show.")] = 3,
) -> None:
    """Every scheduled flow: cron, time zone, policies, the next fire times, its triggers."""
    app_ = build_app(read_settings())
    try:
        now = app_.engine.clock.now()
        rows = [schedule_view(r, now=now, n=count) for r in app_.store.list_schedules()]
    finally:
        app_.close()
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no schedules (signoff schedule add FLOW_FILE)")
        return
    table = Table("flow", "cron", "time zone", "catchup / overlap", "next", "triggers")
    for row in rows:
        upcoming = "\n".join(_local(t) for t in row["next_local"]) or "-"
        if row["paused"]:
            upcoming = "[yellow]paused[/]"
        table.add_row(
            row["flow"],
            row["cron"] or "-",
            row["timezone"],
            f"{row['catchup']} / {row['overlap']}",
            upcoming,
            str(len(row["triggers"])),
        )
    out.print(table)


@schedule_app.command("add")
def schedule_add(
    flow_file: Annotated[Path, typer.Argument(help="The flow file (YAML).")],
    cron: Annotated[str | None, typer.Option(help="Cron line (default: the file's).")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone, e.g. Europe/Paris (default UTC).")
    ] = None,
    catchup: Annotated[str | None, typer.Option(help="none, latest or all.")] = None,
    overlap: Annotated[str | None, typer.Option(help="skip, queue or supersede.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register FLOW_FILE: its `schedule:` (or --cron ...) and its `triggers:`."""
    loaded = load_flow(flow_file)
    rule = None
    if any(v is not None for v in (cron, timezone, catchup, overlap)):
        base = loaded.spec.schedule_rule
        mapping: dict[str, Any] = {
            "cron": cron or (base.cron if base else None),
            "timezone": timezone or (base.timezone if base else "UTC"),
            "catchup": catchup or (base.catchup.value if base else "none"),
            "overlap": overlap or (base.overlap.value if base else "skip"),
        }
        if mapping["cron"] is None:
            raise SignoffError(f"{flow_file} has no schedule: give --cron")
        rule, _ = parse_rules(mapping)
    app_ = build_app(read_settings())
    try:
        record = _scheduler(app_).add(flow_file, schedule=rule)
        row = schedule_view(record, now=app_.engine.clock.now())
    finally:
        app_.close()
    if as_json:
        print_json(row)
        return
    when = f"{row['cron']} ({row['timezone']})" if row["cron"] else "triggers only"
    out.print(f"flow {row['flow']} scheduled: {when}; {len(row['triggers'])} trigger(s)")
    for t in row["next_local"]:
        out.print(f"  next: {_local(t)}")


def _set_paused(flow: str, paused: bool) -> None:
    app_ = build_app(read_settings())
    try:
        scheduler = _scheduler(app_)
        if paused:
            scheduler.pause(flow)
            out.print(f"flow {flow} paused: no scheduled time or trigger fires until resumed")
        else:
            record = scheduler.resume(flow)
            upcoming = schedule_view(record, now=app_.engine.clock.now(), n=1)["next_local"]
            nxt = f"; next: {_local(upcoming[0])}" if upcoming else ""
            out.print(f"flow {flow} resumed{nxt}")
    finally:
        app_.close()


@schedule_app.command("pause")
def schedule_pause(flow: FlowArg) -> None:
    """Stop a flow's schedule and triggers (the times that pass are not run later)."""
    _set_paused(flow, True)


@schedule_app.command("resume")
def schedule_resume(flow: FlowArg) -> None:
    """Start a paused flow's schedule and triggers again from now."""
    _set_paused(flow, False)


@schedule_app.command("remove")
def schedule_remove(flow: FlowArg) -> None:
    """Forget a flow's schedule and triggers (its firings stay in `signoff firings`)."""
    app_ = build_app(read_settings())
    try:
        _scheduler(app_).remove(flow)
    finally:
        app_.close()
    out.print(f"flow {flow} is no longer scheduled")


# ---------------------------------------------------------------------- scheduler
def scheduler(
    tick: Annotated[float, typer.Option(help="Seconds between passes.", min=0.05, max=3600)] = 30.0,
    no_drive: Annotated[
        bool, typer.Option("--no-drive", help="Only start runs; a server or worker drives them.")
    ] = False,
) -> None:
    """Fire scheduled times and trigger rules until stopped (SIGTERM or Ctrl-C).

    Also drives the runs it starts and runs the gate timers. On SQLite only one scheduler
    (this or a `signoff server`) may run per database; on PostgreSQL several may.
    """
    from signoff.server.worker import Worker

    app_ = build_app(read_settings())
    lock: SchedulerLock | None = None
    try:
        path = app_.store.scheduler_lock_path()
        if path is not None:
            lock = SchedulerLock(path)
            lock.acquire()
        worker = Worker(app_, tick=tick, drive=not no_drive, timers=True)
        worker.scheduler = Scheduler(
            app_.store,
            app_.engine,
            app_.engine.clock,
            endpoints=app_.endpoints,
            exclusive=lock is not None,
            grace=max(60.0, 3 * tick),
            after_start=worker.schedule,
        )
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if stop.is_set():  # a second signal: leave now; runs continue from the store
                os._exit(128 + signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        count = len(app_.store.list_schedules())
        out.print(
            f"scheduler on {app_.store.url}: {count} flow(s), a pass every {tick:g}s "
            f"(pid {os.getpid()})"
        )
        worker.start()
        while not stop.wait(0.5):
            pass
        out.print("stopping: waiting for the runs this process drives to settle")
        worker.stop()
    finally:
        if lock is not None:
            lock.release()
        app_.close()


# ----------------------------------------------------------------------- triggers
@triggers_app.callback()
def triggers(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List trigger rules (the same as `triggers list`)."""
    if ctx.invoked_subcommand is None:
        triggers_list(as_json=as_json)


@triggers_app.command("list")
def triggers_list(as_json: JsonOpt = False) -> None:
    """Every rule of every registered flow, with its last evaluation and firing."""
    app_ = build_app(read_settings())
    try:
        now = app_.engine.clock.now()
        rows: list[dict[str, Any]] = []
        for record in app_.store.list_schedules():
            for rule in schedule_view(record, now=now, n=0)["triggers"]:
                last = app_.store.list_firings(flow=record.flow, trigger_id=rule["id"], limit=1)
                rows.append(
                    {
                        "flow": record.flow,
                        **rule,
                        "paused": record.paused,
                        "last_firing": firing_view(last[0]) if last else None,
                    }
                )
    finally:
        app_.close()
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no triggers (add `triggers:` to a flow file, then signoff schedule add)")
        return
    table = Table("flow", "id", "rule", "last evaluation", "last firing")
    for row in rows:
        last = row["last"]
        seen = f"{_held(last.get('holds'))} {last.get('note', '')}" if last else "-"
        fired = row["last_firing"]
        firing = f"{fired['fired_at']} {fired['state']} {fired['run_id'] or ''}" if fired else "-"
        table.add_row(row["flow"], row["id"], row["rule"], seen.strip(), firing)
    out.print(table)


def _held(holds: bool | None) -> str:
    return {True: "holds:", False: "ok:", None: "not judged:"}[holds]


@triggers_app.command("fire-check")
def triggers_fire_check(
    flow: Annotated[str | None, typer.Argument(help="Only this flow's rules.")] = None,
    fire: Annotated[
        bool, typer.Option("--fire", help="Also fire the rules that hold (start their runs).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Judge every rule now and show its evidence; nothing fires without --fire."""
    app_ = build_app(read_settings())
    try:
        found = _scheduler(app_).evaluate_triggers(fire=fire, force=True)
    finally:
        app_.close()
    rows = [evaluation_view(e) for e in found if flow in (None, e.flow)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no rules to judge")
        return
    for row in rows:
        out.print(f"[bold]{row['flow']}[/] {row['trigger_id']}: {row['rule']}")
        out.print(f"  {_held(row['holds'])} {row['note']}", markup=False)
        evidence = row["evidence"]
        for feature in evidence.get("features", []):
            mark = "  <- over" if feature.get("over") else ""
            out.print(
                f"    {feature['name']}: {feature['value']:.4f} (training mean "
                f"{feature['reference_mean']:.4g}, logged {feature['current_mean']:.4g}){mark}",
                markup=False,
            )
        for key in ("value", "error_rate", "events", "model_version", "digest"):
            if key in evidence:
                out.print(f"    {key}: {evidence[key]}", markup=False)
        if row["firing"]:
            out.print(f"  fired {row['firing']} -> run {row['run_id']}", markup=False)


@triggers_app.command("add")
def triggers_add(
    flow: FlowArg,
    on: Annotated[str, typer.Option("--on", help="drift, quality, error_rate, data, webhook.")],
    endpoint: Annotated[str | None, typer.Option(help="The endpoint watched.")] = None,
    metric: Annotated[str | None, typer.Option(help="psi, ks; accuracy, auc, rmse, ndcg.")] = None,
    threshold: Annotated[float | None, typer.Option(help="drift: fire above it.")] = None,
    below: Annotated[float | None, typer.Option(help="quality: fire below it.")] = None,
    above: Annotated[float | None, typer.Option(help="rmse, error_rate: fire above it.")] = None,
    features: Annotated[str | None, typer.Option(help="drift: comma-separated names.")] = None,
    min_events: Annotated[int | None, typer.Option(help="Events needed (100).")] = None,
    window: Annotated[str | None, typer.Option(help="e.g. 7d, 1h.")] = None,
    every: Annotated[str | None, typer.Option(help="How often it is judged, e.g. 5m.")] = None,
    path: Annotated[str | None, typer.Option(help="data: a folder, file or fsspec URL.")] = None,
    group_by: Annotated[str | None, typer.Option(help="ndcg: the grouping feature.")] = None,
    k: Annotated[int | None, typer.Option(help="ndcg: the cut-off.")] = None,
) -> None:
    """Add a rule to a registered flow (checked like a flow file's `triggers:` entry)."""
    given = {
        "on": on,
        "endpoint": endpoint,
        "metric": metric,
        "threshold": threshold,
        "below": below,
        "above": above,
        "features": features,
        "min_events": min_events,
        "window": window,
        "every": every,
        "path": path,
        "group_by": group_by,
        "k": k,
    }
    _, rules = parse_rules(None, [{k_: v for k_, v in given.items() if v is not None}])
    app_ = build_app(read_settings())
    try:
        _scheduler(app_).add_trigger(flow, rules[0])
    finally:
        app_.close()
    out.print(f"flow {flow}: trigger {rules[0].id} added: {rules[0].describe()}")


@triggers_app.command("remove")
def triggers_remove(
    flow: FlowArg,
    trigger_id: Annotated[str, typer.Argument(help="The rule's id (`triggers list`).")],
) -> None:
    """Remove a rule from a flow (a rule from the file comes back with `schedule add`)."""
    app_ = build_app(read_settings())
    try:
        _scheduler(app_).remove_trigger(flow, trigger_id)
    finally:
        app_.close()
    out.print(f"flow {flow}: trigger {trigger_id} removed")


# ------------------------------------------------------------------------ firings
def firings(
    flow: Annotated[str | None, typer.Argument(help="Only this flow's firings.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Every scheduled time and trigger firing: started, skipped, queued, missed, failed."""
    app_ = build_app(read_settings())
    try:
        rows = [firing_view(f) for f in app_.store.list_firings(flow=flow, limit=limit)]
    finally:
        app_.close()
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no firings yet")
        return
    table = Table("when", "flow", "kind", "state", "run", "why")
    for row in rows:
        when = row["scheduled_for"] or row["fired_at"]
        why = row["reason"] or row["evidence"].get("rule") or ""
        table.add_row(when, row["flow"], row["kind"], row["state"], row["run_id"] or "", why)
    out.print(table)
