"""cnvrg.io compatibility: keys accepted but not acted on, loose task names, ``/input/`` paths.

cnvrg exports and blueprints load as they are. What signoff cannot honour is never dropped
silently: each such key gets a warning at its position. cnvrg links relation endpoints to task
titles loosely and lets a task read an upstream task's files at ``/input/<upstream_slug>/``;
both are resolved here, never by guessing between two tasks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from signoff.domain.specs import TaskKind
from signoff.spec._schema import CNVRG_DEPLOY_KEYS, COMMAND_KEYS, KIND_TASK_KEYS
from signoff.spec._yaml import Loc
from signoff.spec.templates import task_slug

__all__ = [
    "INPUTS_PREFIX",
    "Reporter",
    "ResolvedName",
    "find_input_refs",
    "ignored_condition_keys",
    "ignored_task_keys",
    "resolve_relation_end",
    "rewrite_input_refs",
    "unknown_input_message",
]

INPUTS_PREFIX = "{{ inputs }}"
"""What ``/input`` becomes: the template variable holding the task's inputs folder."""

# `/input/<slug>` as a whole path segment: not inside another path (`./input`, `$HOME/input`)
# and not a file directly under /input (`/input/model.pkl` is not an upstream's folder).
_INPUT_REF = re.compile(r"(?<![\w.~/$-])/input/([A-Za-z0-9_-]+)(?![\w.-])")

_SERVED = "signoff serves the approved model with its own server"
_RUNS_NOTHING = "a deploy task runs inside signoff and runs no command"
_NOT_FETCHED = "cnvrg library components are not fetched; the command runs from the flow's folder"
_NOT_CHECKED_OUT = "a run uses the flow's folder as it is when the run starts, not a git checkout"
_REASONS: Mapping[str, str] = {
    "image": "no container runtime is in use; the command runs in the executor's environment",
    "language": "the command is run as written",
    "library": _NOT_FETCHED,
    "library_version": _NOT_FETCHED,
    "git_branch": _NOT_CHECKED_OUT,
    "git_commit": _NOT_CHECKED_OUT,
    "computes": "the first compute template is asked of a Ray cluster as a custom resource of "
    "that name (declare it with `ray start --resources`); the local executor does not wait "
    "for custom resources; 'resources' (cpu, gpu, memory) is what both executors act on",
    **dict.fromkeys(CNVRG_DEPLOY_KEYS, _SERVED),
}
_WEBSERVICE = "webservice"


class Reporter(Protocol):
    """Where the checks record what they find (the loader's checker)."""

    def error(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        """Record an error at ``loc`` (at its key when ``at_key``)."""

    def warn(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        """Record a warning at ``loc`` (at its key when ``at_key``)."""


def _is_empty(value: object) -> bool:
    """A value that asks for nothing (``''``, ``[]``, ``{}``, null, false, 0)."""
    if isinstance(value, str | list | dict):
        return not value
    return value is None or value is False or value == 0


def _not_acted_on(key: str, reason: str) -> str:
    return f"'{key}' is accepted but not acted on: {reason}"


# ---------------------------------------------------------------- keys not acted on


def ignored_task_keys(report: Reporter, loc: Loc, raw: Mapping[str, Any], kind: TaskKind) -> None:
    """Warn once per key of the task that is accepted but not acted on (empty values excepted).

    Keys the task's type does not allow at all are errors found elsewhere, not warned here.
    """
    allowed = KIND_TASK_KEYS[kind]
    for key, value in raw.items():
        if _is_empty(value) or key not in allowed:
            continue
        if kind is TaskKind.DEPLOY and key in COMMAND_KEYS:
            report.warn((*loc, key), _not_acted_on(key, _RUNS_NOTHING), at_key=True)
        elif key == "kind":
            if value != _WEBSERVICE:
                reason = f"{_SERVED}, as a web service (kind: {_WEBSERVICE})"
                report.warn((*loc, key), _not_acted_on(f"kind: {value}", reason), at_key=True)
        elif key in _REASONS:
            report.warn((*loc, key), _not_acted_on(key, _REASONS[key]), at_key=True)
    requirements = raw.get("requirements")
    if kind.runs_command and isinstance(requirements, dict):
        hpu = requirements.get("hpu")
        if not _is_empty(hpu):
            reason = "the executor acts on cpu, gpu and memory, not on HPUs"
            report.warn((*loc, "requirements", "hpu"), _not_acted_on("hpu", reason), at_key=True)


def ignored_condition_keys(report: Reporter, loc: Loc, raw: object) -> None:
    """Warn about cnvrg condition keys (``task``, ``value``) that carry a value."""
    reasons = {
        "task": "a select task ranks the task runs of all its upstream tasks",
        "value": "a condition ranks by 'tag_key' and 'objective' and bars by 'target'",
    }
    for j, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict):
            continue
        for key, reason in reasons.items():
            if not _is_empty(item.get(key)):
                report.warn((*loc, j, key), _not_acted_on(key, reason), at_key=True)


# ---------------------------------------------------------------- relation endpoints


@dataclass(frozen=True)
class ResolvedName:
    """A relation endpoint resolved to a task name, or why it could not be."""

    name: str | None
    warning: str | None = None
    error: str | None = None


def resolve_relation_end(ref: str, names: Iterable[str]) -> ResolvedName:
    """``ref`` as a task name: exact first, else the one task whose slug equals ``ref``'s slug."""
    known = list(names)
    if ref in known:
        return ResolvedName(ref)
    slug = task_slug(ref)
    candidates = [name for name in known if slug and task_slug(name) == slug]
    if len(candidates) == 1:
        found = candidates[0]
        warning = (
            f"'{ref}' is taken as task '{found}' (the names differ only in case, spaces, "
            "dashes or underscores); write the task's name exactly"
        )
        return ResolvedName(found, warning=warning)
    if candidates:
        listed = ", ".join(f"'{c}'" for c in candidates)
        return ResolvedName(None, error=f"'{ref}' could name any of the tasks {listed}")
    close = difflib.get_close_matches(ref, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ResolvedName(None, error=f"unknown task '{ref}'{hint}")


# ---------------------------------------------------------------- /input/<slug> paths


def find_input_refs(text: str) -> list[str]:
    """The slug of every ``/input/<slug>`` path in ``text``, in order (repeats kept)."""
    return [m.group(1) for m in _INPUT_REF.finditer(text)]


def rewrite_input_refs(text: str, known: Callable[[str], bool]) -> str:
    """``/input/<slug>`` -> ``{{ inputs }}/<slug>`` for every slug that ``known`` accepts."""

    def swap(match: re.Match[str]) -> str:
        slug = match.group(1)
        return f"{INPUTS_PREFIX}/{slug}" if known(slug) else match.group(0)

    return _INPUT_REF.sub(swap, text)


def unknown_input_message(slug: str, task: str, upstream: list[str], all_names: list[str]) -> str:
    """Why ``/input/<slug>`` names no upstream task of ``task``, with the way out."""
    head = f"'/input/{slug}' names no upstream task of '{task}'"
    elsewhere = [name for name in all_names if task_slug(name) == slug and name != task]
    if elsewhere:
        return f"{head}: '{elsewhere[0]}' is not directly upstream of it (add a relation from it)"
    if not upstream:
        return f"{head}: it has no upstream tasks"
    slugs = [task_slug(name) for name in upstream]
    close = difflib.get_close_matches(task_slug(slug), slugs, n=1, cutoff=0.6)
    if close:
        return f"{head} (did you mean '/input/{close[0]}'?)"
    return f"{head} (its upstream folders: {', '.join(slugs)})"
