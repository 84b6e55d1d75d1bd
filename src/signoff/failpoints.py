"""Named pause points for crash tests: stop this process exactly where a power cut would hurt.

``SIGNOFF_FAILPOINTS=deploy.after_start,rollover.after_switch`` (read once by ``bootstrap``,
which calls :func:`arm`) makes the process, when it reaches one of those points, write
``<folder>/<name>`` (holding its pid) and stop itself with ``SIGSTOP``. A test waits for the
file, sees the process stopped there, and kills it with ``SIGKILL``: the kill provably lands at
that point, not a little before or after. Unarmed (the default), :func:`reached` is one
frozenset lookup and does nothing.

The points, in the order a run meets them:

- ``select.before_commit`` — the select task chose, its success not yet written;
- ``gate.after_open`` — the gate is committed, nobody notified yet;
- ``decide.after_commit`` — a CLI decision is committed, the run not yet driven on;
- ``deploy.before_start`` — a deploy task runs, its endpoint process not yet started;
- ``deploy.after_start`` — a first deploy's endpoint process answers, nothing recorded;
- ``rollover.after_load`` — the new version is loaded beside the old, no traffic switched;
- ``rollover.after_switch`` — traffic is on the new version, nothing recorded;
- ``deploy.before_commit`` — the deployment is recorded, the task's success not yet.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from pathlib import Path

__all__ = ["POINTS", "arm", "reached"]

POINTS = frozenset(
    {
        "select.before_commit",
        "gate.after_open",
        "decide.after_commit",
        "deploy.before_start",
        "deploy.after_start",
        "rollover.after_load",
        "rollover.after_switch",
        "deploy.before_commit",
    }
)

_armed: frozenset[str] = frozenset()
_folder: Path | None = None


def arm(names: Iterable[str], folder: Path) -> None:
    """Pause at these points from now on, announcing each in ``folder``."""
    global _armed, _folder
    wanted = frozenset(n.strip() for n in names if n.strip())
    unknown = sorted(wanted - POINTS)
    if unknown:
        raise ValueError(f"unknown failpoint(s) {', '.join(unknown)}; known: {sorted(POINTS)}")
    _armed, _folder = wanted, folder


def reached(name: str) -> None:
    """If ``name`` is armed: announce it and stop this process (``SIGSTOP``) right here."""
    if name not in _armed or _folder is None:
        return
    _folder.mkdir(parents=True, exist_ok=True)
    marker = _folder / name
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(str(os.getpid()))
    tmp.replace(marker)
    os.kill(os.getpid(), signal.SIGSTOP)
