"""A task run's working folder as the driver sees it: the code snapshot, outputs, the log.

The run's code is copied once (``snapshot_code``) and stored as a folder in the artifact
store (``store_snapshot``). The executor builds each task run's
folder (links to the code and to its upstreams' ``output/`` folders, ``output/``:
``signoff.executors.materialise``); the driver finds an upstream's output (``output_of``),
the inputs of an in-process task (``input_map``) and a log's last lines (``log_tail``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from signoff.domain.ports_execution import ArtifactStore
from signoff.domain.records import TaskRunRecord
from signoff.domain.specs import TaskSpec
from signoff.errors import SignoffError
from signoff.spec.templates import task_slug

__all__ = [
    "env_key",
    "input_map",
    "log_tail",
    "output_of",
    "snapshot_code",
    "store_snapshot",
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


def input_map(task: TaskSpec, by_task: Mapping[str, list[TaskRunRecord]]) -> dict[str, Path]:
    """Upstream outputs for an in-process task (one upstream task run: its folder)."""
    found: dict[str, Path] = {}
    for name in task.depends_on:
        ups = by_task[name]
        if len(ups) == 1:
            found[name] = found[task_slug(name)] = output_of(ups[0])
    return found


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


def store_snapshot(code_dir: Path, artifacts: ArtifactStore) -> str:
    """Store the run's code snapshot as a folder in the artifact store; its manifest digest.

    A worker on another machine rebuilds the snapshot from that digest alone, and the run's
    facts name it (``code_tree``) so a reproduction can fetch the code as it was.
    """
    return artifacts.put_tree(code_dir)
