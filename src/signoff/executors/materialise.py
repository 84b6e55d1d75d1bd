"""The working folder of a task run, built on the worker from its ``TaskExecution`` alone.

A command's folder links each entry of the run's code snapshot, links its upstreams'
outputs under ``inputs/<slug>/`` (``inputs/<slug>/<index>/`` when the upstream fanned out),
and holds an empty ``output/`` (cleared on a retry), and, for cnvrg's ``output_dir``, a
second name linking to ``output/``. An in-process callable gets no links (its inputs come
through its context): only its retry's output is cleared. Either way a retry starts without
the previous attempt's ``records.jsonl``.

Local folders (a path or a ``file://`` uri) are linked, never copied. Any other uri is
handed to ``fetch``, which places the content in a local folder and returns it, to be
linked the same way.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from itertools import groupby
from pathlib import Path
from urllib.parse import unquote, urlsplit

from signoff.domain.ports_execution import ArtifactRef, TaskExecution
from signoff.errors import ExecutionError

__all__ = ["Fetch", "local_folder", "materialise"]

Fetch = Callable[[str], Path]
"""A remote uri's content as a local folder (fetched once, then reused by its caller)."""

_RESERVED = {"inputs", "output", "records.jsonl", "stdout.log"}


def materialise(execution: TaskExecution, fetch: Fetch | None = None) -> Path:
    """Build the task run's working folder as its attempt needs it; return the folder."""
    work = execution.work_dir
    output = work / execution.output_dir
    if execution.call is None:
        _command_folder(execution, output, fetch)
    elif not execution.fresh:  # its folders are made when it writes
        shutil.rmtree(output, ignore_errors=True)
    if execution.output_link:
        _link_output_dir(work / execution.output_link, output)
    if not execution.fresh:
        (work / "records.jsonl").unlink(missing_ok=True)
    return work


def local_folder(uri: str, fetch: Fetch | None = None) -> Path:
    """Where a uri's content is on this machine: itself if local, else what ``fetch`` gives."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if len(parts.scheme) <= 1:  # a plain path (a one-letter scheme is a Windows drive)
        return Path(uri)
    if fetch is None:
        raise ExecutionError(f"cannot fetch {uri}: this executor reads local folders only")
    return fetch(uri)


def _command_folder(execution: TaskExecution, output: Path, fetch: Fetch | None) -> None:
    work = execution.work_dir
    inputs = work / "inputs"
    _empty_output(work, output, fresh=execution.fresh)
    if execution.input_refs:
        inputs.mkdir(exist_ok=True)
    if execution.code is not None:
        _link_code(work, local_folder(execution.code, fetch))
    for (_, slug), refs in groupby(execution.input_refs, key=lambda ref: (ref.task, ref.slug)):
        _link_inputs(inputs / slug, refs, fetch)


def _empty_output(work: Path, output: Path, *, fresh: bool) -> None:
    if fresh:  # a first attempt: nothing to clear
        output.mkdir(parents=True, exist_ok=True)
        return
    work.mkdir(parents=True, exist_ok=True)
    if output.is_symlink():
        output.unlink()
    elif output.exists():  # a retry starts from an empty output folder
        shutil.rmtree(output)
    output.mkdir()


def _link_code(work: Path, code: Path) -> None:
    for entry in code.iterdir():
        link = work / entry.name
        if entry.name in _RESERVED or link.exists() or link.is_symlink():
            continue
        link.symlink_to(entry)


def _link_inputs(target: Path, refs: Iterable[ArtifactRef], fetch: Fetch | None) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    placed = list(refs)
    if len(placed) == 1 and placed[0].index < 0:
        target.symlink_to(local_folder(placed[0].uri, fetch), target_is_directory=True)
        return
    target.mkdir(parents=True)
    for ref in placed:
        source = local_folder(ref.uri, fetch)
        (target / str(ref.index)).symlink_to(source, target_is_directory=True)


def _link_output_dir(link: Path, output: Path) -> None:
    """cnvrg's ``output_dir``: a folder name in the working folder that is collected."""
    if link == output or link.is_symlink() or link.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(output, target_is_directory=True)
