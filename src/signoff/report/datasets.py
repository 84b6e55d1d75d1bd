"""What a data task produced, as the report shows it: digest, files, bytes, rows, schema.

The digest, file count and size come from the artifact records the engine stored when the
task ended (the digest is the engine's folder fingerprint, the value cache keys and
reproductions compare). Rows and columns are read from the files still in the output folder
by :mod:`signoff.tracking.fingerprints` (headers only: never the data of an array, never a
pickle), the one implementation of data fingerprints.
"""

from __future__ import annotations

import csv
import hashlib
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from signoff.domain.records import ArtifactRecord
from signoff.tracking.fingerprints import describe_table, folder_fingerprint

__all__ = ["artifacts_digest", "describe_output"]

_MAX_TABLES = 20
_CHUNK = 1 << 20


def artifacts_digest(artifacts: Sequence[ArtifactRecord]) -> str:
    """The folder fingerprint of a task run's artifact records."""
    return folder_fingerprint((rec.path, rec.sha256) for rec in artifacts)


def describe_output(folder: Path, artifacts: Sequence[ArtifactRecord]) -> dict[str, Any]:
    """Digest, files, bytes, rows (across tables) and tables of one output folder.

    Without artifact records (a task run recorded before artifacts were), the files in
    ``folder`` are hashed instead.
    """
    records = list(artifacts) or _hash_folder(folder)
    tables: list[dict[str, Any]] = []
    for rec in sorted(records, key=lambda r: r.path):
        path = folder / rec.path
        if len(tables) >= _MAX_TABLES or not path.is_file():
            continue
        try:
            found = describe_table(path, rec.path)
            table = dict(found) if found is not None else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, csv.Error) as exc:
            table = {"path": rec.path, "format": "unreadable", "rows": None, "columns": []}
            table["error"] = f"{type(exc).__name__}: {exc}"
        if table is not None:
            tables.append(table)
    known = [t["rows"] for t in tables if t["rows"] is not None]
    return {
        "digest": artifacts_digest(records),
        "files": len(records),
        "bytes": sum(r.size for r in records),
        "rows": sum(known) if known else None,
        "tables": tables,
    }


def _hash_folder(folder: Path) -> list[ArtifactRecord]:
    if not folder.is_dir():
        return []
    records = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            h = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            rel = path.relative_to(folder).as_posix()
            records.append(ArtifactRecord("", rel, h.hexdigest(), path.stat().st_size))
    return records
