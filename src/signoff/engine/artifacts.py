"""Content-addressed artifacts and cache keys.

Every file a task run leaves in its output folder is hashed (sha256) and hard-linked into
``<home>/artifacts/<aa>/<digest>``: the same bytes are stored once however many runs produce
them, and downstream tasks read upstream outputs through links, never through copies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from signoff.domain.records import ArtifactRecord
from signoff.tracking import fingerprints

__all__ = ["cache_key", "code_fingerprint", "collect_artifacts", "folder_fingerprint"]

_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def collect_artifacts(output: Path, task_run_id: str, store_root: Path) -> list[ArtifactRecord]:
    """Hash every file under ``output`` and link it into the content-addressed store."""
    if not output.is_dir():
        return []
    records: list[ArtifactRecord] = []
    for root, dirs, files in os.walk(output):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if path.is_symlink():
                continue
            digest = _sha256(path)
            records.append(
                ArtifactRecord(
                    task_run_id=task_run_id,
                    path=path.relative_to(output).as_posix(),
                    sha256=digest,
                    size=path.stat().st_size,
                )
            )
            target = store_root / digest[:2] / digest
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                # On another file system the link fails; the record still names the content.
                with contextlib.suppress(OSError):
                    os.link(path, target)
    return records


def folder_fingerprint(records: Iterable[ArtifactRecord]) -> str:
    """One digest for a set of artifacts (their paths and contents): the data fingerprint."""
    return fingerprints.folder_fingerprint((rec.path, rec.sha256) for rec in records)


def code_fingerprint(code_dir: Path) -> str:
    """Digest of the run's code snapshot (paths and contents)."""
    h = hashlib.sha256()
    if not code_dir.is_dir():
        return h.hexdigest()
    for path in sorted(p for p in code_dir.rglob("*") if p.is_file()):
        h.update(path.relative_to(code_dir).as_posix().encode() + b"\0")
        h.update(_sha256(path).encode() + b"\0")
    return h.hexdigest()


def cache_key(
    *,
    command: str | None,
    call: str | None,
    params: Mapping[str, Any],
    code: str,
    inputs: Mapping[str, str],
) -> str:
    """What makes two task runs interchangeable: command, params, code and input contents."""
    body = json.dumps(
        {"command": command, "call": call, "params": params, "code": code, "inputs": inputs},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()
