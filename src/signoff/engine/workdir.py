"""A task run's working folder: the code snapshot, links to upstream outputs, its output.

The run's code is copied once (``snapshot_code``); each command task run's folder links to
it, to its upstreams' ``output/`` folders under ``inputs/<slug>/`` (one sub-folder per grid
index), and holds ``output/``, ``records.jsonl`` and ``stdout.log``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from signoff.domain.records import TaskRunRecord
from signoff.domain.specs import TaskSpec
from signoff.errors import SignoffError
from signoff.spec.templates import task_slug

__all__ = [
    "env_key",
    "input_map",
    "link_inputs",
    "link_output_dir",
    "log_tail",
    "output_of",
    "prepare_work_dir",
    "snapshot_code",
]

_CODE_SKIP = {".git", ".signoff", "__pycache__", ".venv", "node_modules", ".mypy_cache"}
_CODE_MAX_BYTES = 50 * 1024 * 1024


def snapshot_code(src: Path, dest: Path, *, skip: Path) -> None:
    """Copy the flow's folder (code and small files) so the run can be reproduced as it was.

    signoff's own home folder is never copied, even when it lies inside the flow's folder.
    """
    total = 0
    home = skip.resolve()
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _CODE_SKIP and not d.startswith(".") and (Path(root) / d).resolve() != home
        )
        rel = Path(root).relative_to(src)
        for name in sorted(files):
            path = Path(root) / name
            total += path.stat().st_size
            if total > _CODE_MAX_BYTES:
                raise SignoffError(
                    f"the flow's folder {src} holds over {_CODE_MAX_BYTES >> 20} MB; keep data "
                    "out of it (tasks fetch data) so runs stay cheap to snapshot"
                )
            (dest / rel).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel / name)
            os.chmod(dest / rel / name, path.stat().st_mode & 0o700)  # the home is owner-only


_RESERVED = {"inputs", "output", "records.jsonl", "stdout.log"}


def input_map(task: TaskSpec, by_task: Mapping[str, list[TaskRunRecord]]) -> dict[str, Path]:
    """Upstream outputs for an in-process task (one upstream task run: its folder)."""
    found: dict[str, Path] = {}
    for name in task.depends_on:
        ups = by_task[name]
        if len(ups) == 1:
            found[name] = found[task_slug(name)] = output_of(ups[0])
    return found


def prepare_work_dir(
    work: Path, code_dir: Path, inputs: Path | None, output: Path, *, fresh: bool
) -> None:
    """An empty output folder, the inputs folder, and (for commands) links to the code."""
    if fresh:  # a first attempt: nothing to clear
        output.mkdir(parents=True, exist_ok=True)
    else:
        work.mkdir(parents=True, exist_ok=True)
        if output.is_symlink():
            output.unlink()
        elif output.exists():  # a retry starts from an empty output folder
            shutil.rmtree(output)
        output.mkdir()
    if inputs is not None:
        inputs.mkdir(exist_ok=True)
    for entry in code_dir.iterdir():
        link = work / entry.name
        if entry.name in _RESERVED or link.exists() or link.is_symlink():
            continue
        link.symlink_to(entry)


def link_inputs(target: Path, upstream: list[TaskRunRecord]) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    if len(upstream) == 1:
        target.symlink_to(output_of(upstream[0]), target_is_directory=True)
        return
    target.mkdir(parents=True)
    for u in upstream:
        (target / str(u.index)).symlink_to(output_of(u), target_is_directory=True)


def link_output_dir(link: Path, output: Path) -> None:
    """cnvrg's ``output_dir``: a folder name in the working folder that is collected."""
    if link == output or link.is_symlink() or link.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(output, target_is_directory=True)


def output_of(tr: TaskRunRecord) -> Path:
    out = Path(tr.work_dir) / "output"
    return out.resolve() if out.is_symlink() else out


def env_key(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key).upper()


def log_tail(work: Path, lines: int = 3) -> str:
    log = work / "stdout.log"
    if not log.is_file():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])
