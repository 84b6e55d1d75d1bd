"""A run's DAG laid out for an inline SVG: one box per task, rows by depth, top to bottom.

Top to bottom keeps the drawing narrow, so it stays readable at phone width. A task that fans
out into a grid is one box that counts its task runs; its color is the state that matters
most among them (a failure over a success, running over waiting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signoff.domain.records import TaskRunRecord
from signoff.domain.specs import FlowSpec
from signoff.domain.states import TaskRunState

__all__ = ["Dag", "DagEdge", "DagNode", "STATE_COLORS", "layout_dag", "task_state"]

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 46, 16, 34, 8

STATE_COLORS = {
    "pending": "#c9ced6",
    "queued": "#aeb7c4",
    "running": "#3b82f6",
    "succeeded": "#1f7a3a",
    "approved": "#1f7a3a",
    "failed": "#a4161a",
    "waiting_for_approval": "#7a3ea1",
    "rejected": "#b5542b",
    "expired": "#8a6d3b",
    "cancelled": "#6b7280",
    "skipped": "#9ca3af",
}

_LIGHT = frozenset({"pending", "queued", "skipped"})  # light boxes get dark text

# When a grid's task runs differ, the box shows the first of these that any of them is in.
_PRIORITY = (
    TaskRunState.FAILED,
    TaskRunState.RUNNING,
    TaskRunState.WAITING_FOR_APPROVAL,
    TaskRunState.QUEUED,
    TaskRunState.REJECTED,
    TaskRunState.EXPIRED,
    TaskRunState.CANCELLED,
    TaskRunState.PENDING,
    TaskRunState.SKIPPED,
    TaskRunState.APPROVED,
    TaskRunState.SUCCEEDED,
)


@dataclass(frozen=True, slots=True)
class DagNode:
    """One task's box: where it is, what it says, and its color."""

    task: str
    anchor: str
    x: int
    y: int
    state: str
    color: str
    ink: str  # text color readable on ``color``
    count: int
    done: int


@dataclass(frozen=True, slots=True)
class DagEdge:
    """A dependency, drawn from the upstream box's bottom to the downstream box's top."""

    path: str


@dataclass(frozen=True, slots=True)
class Dag:
    """The whole drawing: its size, boxes and edges."""

    width: int
    height: int
    nodes: tuple[DagNode, ...]
    edges: tuple[DagEdge, ...]
    node_w: int = NODE_W
    node_h: int = NODE_H


def task_state(runs: Sequence[TaskRunRecord]) -> TaskRunState:
    """The state a task's box shows for its task runs."""
    states = {tr.state for tr in runs}
    if not states:
        return TaskRunState.PENDING
    for state in _PRIORITY:
        if state in states:
            return state
    return next(iter(states))


def _depths(spec: FlowSpec) -> dict[str, int]:
    depth: dict[str, int] = {}
    known = {t.name for t in spec.tasks}
    pending = list(spec.tasks)
    while pending:  # the spec is acyclic (checked when it was loaded); bounded anyway
        progressed = False
        for task in list(pending):
            ups = [d for d in task.depends_on if d in known]
            if all(u in depth for u in ups):
                depth[task.name] = 1 + max((depth[u] for u in ups), default=-1)
                pending.remove(task)
                progressed = True
        if not progressed:
            for task in pending:
                depth[task.name] = 0
            break
    return depth


def anchor_of(task: str) -> str:
    """The id of a task's section on the run page."""
    return "task-" + "".join(ch if ch.isalnum() else "-" for ch in task)


def layout_dag(spec: FlowSpec, task_runs: Sequence[TaskRunRecord]) -> Dag:
    """Place every task of ``spec`` by depth and color it by its task runs' states."""
    depth = _depths(spec)
    rows: dict[int, list[str]] = {}
    for task in spec.tasks:
        rows.setdefault(depth[task.name], []).append(task.name)
    widest = max((len(r) for r in rows.values()), default=1)
    width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X
    height = PAD * 2 + len(rows) * NODE_H + max(0, len(rows) - 1) * GAP_Y
    by_task: dict[str, list[TaskRunRecord]] = {}
    for tr in task_runs:
        by_task.setdefault(tr.task_name, []).append(tr)
    places: dict[str, tuple[int, int]] = {}
    nodes = []
    for level in sorted(rows):
        names = rows[level]
        span = len(names) * NODE_W + (len(names) - 1) * GAP_X
        left = (width - span) // 2
        y = PAD + level * (NODE_H + GAP_Y)
        for i, name in enumerate(names):
            x = left + i * (NODE_W + GAP_X)
            places[name] = (x, y)
            runs = by_task.get(name, [])
            state = task_state(runs).value
            nodes.append(
                DagNode(
                    task=name,
                    anchor=anchor_of(name),
                    x=x,
                    y=y,
                    state=state,
                    color=STATE_COLORS.get(state, "#9ca3af"),
                    ink="#1d1d1f" if state in _LIGHT else "#ffffff",
                    count=len(runs),
                    done=sum(1 for tr in runs if tr.state.is_success),
                )
            )
    edges = []
    for task in spec.tasks:
        for up in task.depends_on:
            if up not in places:
                continue
            (x1, y1), (x2, y2) = places[up], places[task.name]
            sx, sy = x1 + NODE_W // 2, y1 + NODE_H
            ex, ey = x2 + NODE_W // 2, y2
            mid = (sy + ey) // 2
            edges.append(DagEdge(f"M{sx},{sy} C{sx},{mid} {ex},{mid} {ex},{ey - 4}"))
    return Dag(width=width, height=height, nodes=tuple(nodes), edges=tuple(edges))
