"""Content-addressed artifacts and cache keys.

Every file a task run leaves in its output folder goes into the artifact store (the
``ArtifactStore`` port; ``<home>/artifacts/<aa>/<digest>`` locally) under its sha256: the same
bytes are stored once however many runs produce them, and downstream tasks read upstream
outputs through links, never through copies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from signoff.domain.ports_execution import ArtifactStore
from signoff.domain.records import ArtifactRecord
from signoff.tracking import fingerprints

__all__ = ["cache_key", "code_fingerprint", "collect_artifacts", "folder_fingerprint"]


def collect_artifacts(output: Path, task_run_id: str, store: ArtifactStore) -> list[ArtifactRecord]:
    """Put every file under ``output`` into the artifact store; one record per file."""
    return [
        ArtifactRecord(task_run_id, rel, digest, (output / rel).stat().st_size)
        for rel, digest in store.put_folder(output).items()
    ]


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
        h.update(fingerprints.file_sha256(path).encode() + b"\0")
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
