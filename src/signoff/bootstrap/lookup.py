"""What a person typed, resolved to a record: a run id or a unique prefix of one.

The store matches ids exactly; the CLI and the HTTP API accept a prefix (``signoff show
3f2a``), resolved here so every entry point words a miss or an ambiguity the same way.
"""

from __future__ import annotations

from signoff.domain.ports import RunStore
from signoff.domain.records import RunRecord
from signoff.errors import NotFoundError

__all__ = ["resolve_compare_item", "resolve_run"]


def resolve_run(store: RunStore, ref: str) -> RunRecord:
    """The run whose id is ``ref``, else the one run whose id starts with it.

    A prefix is taken literally (``%`` and ``_`` are no wildcards). No match, or more than
    one, is a :class:`NotFoundError` saying which.
    """
    try:
        return store.get_run(ref)
    except NotFoundError:
        pass
    found = store.runs_by_prefix(ref, limit=2)
    if not found:
        raise NotFoundError(f"no run {ref!r}")
    if len(found) > 1:
        raise NotFoundError(f"run id prefix {ref!r} is ambiguous")
    return found[0]


def resolve_compare_item(store: RunStore, item: str) -> str:
    """A compare argument (a run, a task run id, or RUN:TASK) with its run part made a full id."""
    run_part, sep, label = item.partition(":")
    if sep:
        return f"{resolve_run(store, run_part).id}:{label}"
    try:
        store.get_task_run(item)
    except NotFoundError:
        return resolve_run(store, item).id
    return item
