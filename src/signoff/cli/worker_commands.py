"""``signoff worker``: a process that drives runs from the configured store, nothing else.

A team runs ``signoff server --no-worker`` (the API, the web UI, gate timers and schedules)
and any number of ``signoff worker`` processes, on any machines, against one PostgreSQL
store. Each pass reads the store and drives every run that can move; the run's lease makes
sure one process drives a run at a time, and a worker that dies loses its runs to another
once their leases run out. Like a Prefect worker it only picks up work by default: gate
timers (``--timers``) and schedules (``--scheduler``) stay with the server unless asked.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from signoff.bootstrap import build_app
from signoff.cli.console import err, out, read_settings

if TYPE_CHECKING:
    from signoff.server.worker import Worker

__all__ = ["register"]


def register(cli: typer.Typer) -> None:
    """Add ``worker`` to ``cli``."""
    cli.command()(worker)


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="One pass: drive what can move until it settles, exit.")
    ] = False,
    poll: Annotated[
        float, typer.Option("--poll", help="Seconds between passes.", min=0.05, max=3600)
    ] = 2.0,
    threads: Annotated[
        int, typer.Option("--threads", help="Runs this process drives at once.", min=1, max=64)
    ] = 4,
    timers: Annotated[
        bool, typer.Option("--timers", help="Also expire overdue gates and send reminders.")
    ] = False,
    with_scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler",
            help="Also fire schedules and trigger rules (one per SQLite database; several "
            "are safe on PostgreSQL).",
        ),
    ] = False,
) -> None:
    """Drive runs from the store until stopped (SIGTERM or Ctrl-C), beside other workers.

    The first signal stops taking runs and lets the runs being driven settle (end, or wait
    at a gate); a second one gives their leases up and leaves at once: another worker takes
    them over, and what their tasks left running is stopped before they run again.
    """
    from signoff.server.worker import Worker

    app_ = build_app(read_settings())
    try:
        loop = Worker(
            app_, tick=poll, drive=True, timers=timers, schedules=with_scheduler, threads=threads
        )
        if once:
            loop.run_once()
            loop.driver.wait_idle()
            loop.stop()
            return
        jobs = ["runs"] + ["gate timers"] * timers + ["schedules"] * with_scheduler
        out.print(
            f"signoff worker on {app_.store.url}: drives {', '.join(jobs)}, a pass every "
            f"{poll:g}s (pid {os.getpid()}, lease {app_.engine.lease_seconds:g}s)",
            markup=False,
        )
        _serve(loop)
    finally:
        app_.close()


def _serve(loop: Worker) -> None:
    """Run ``loop`` until a signal; see :func:`worker` for what the first and second do."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # a second signal: leave now, the runs go to another worker
            released = loop.driver.release_held()
            err.print(f"released {len(released)} run(s); leaving", markup=False)
            os._exit(128 + signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    loop.start()
    while not stop.wait(0.5):
        pass
    held = loop.driver.busy()
    out.print(f"stopping: letting the {len(held)} run(s) this process drives settle")
    loop.stop()
    out.print("stopped")
