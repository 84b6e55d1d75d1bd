"""What a data task produced, as the report shows it: digest, files, bytes, rows, schema.

The digest, file count and size come from the artifact records the engine stored when the
task ended (the digest is the engine's folder fingerprint: sha256 over sorted ``path\\0sha256\\0``
pairs, the value cache keys and reproductions compare). Rows and columns are read from the
files still in the output folder, from headers only: ``.npy``/``.npz`` array headers (never
the data, never pickles) and the header line and line count of CSV/TSV files.

``signoff.tracking.fingerprints`` describes data the same way, but the layer contract keeps
``review`` and ``tracking`` independent, so this module reads the few headers it needs itself.
"""

from __future__ import annotations

import csv
import hashlib
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from signoff.domain.records import ArtifactRecord

__all__ = ["artifacts_digest", "describe_output"]

_MAX_TABLES = 20
_CHUNK = 1 << 20


def artifacts_digest(artifacts: Sequence[ArtifactRecord]) -> str:
    """The folder fingerprint of a task run's artifact records."""
    h = hashlib.sha256()
    for rec in sorted(artifacts, key=lambda r: r.path):
        h.update(f"{rec.path}\0{rec.sha256}\0".encode())
    return h.hexdigest()


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
            table = _read_table(path, rec.path)
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


def _read_table(path: Path, rel: str) -> dict[str, Any] | None:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        columns = []
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as f:
                        shape, dtype = _npy_header(f)
                    columns.append({"name": info.filename[:-4], "dtype": dtype, "shape": shape})
        first = columns[0]["shape"] if columns else []
        return {
            "path": rel,
            "format": "npz",
            "rows": first[0] if first else None,
            "columns": columns,
        }
    if suffix == ".npy":
        with path.open("rb") as f:
            shape, dtype = _npy_header(f)
        column = {"name": path.stem, "dtype": dtype, "shape": shape}
        return {
            "path": rel,
            "format": "npy",
            "rows": shape[0] if shape else None,
            "columns": [column],
        }
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t" if suffix == ".tsv" else ",")
            header = next(reader, [])
            rows = sum(1 for _ in reader)
        columns = [{"name": name, "dtype": "text"} for name in header]
        return {"path": rel, "format": suffix[1:], "rows": rows, "columns": columns}
    return None


def _npy_header(f: IO[bytes]) -> tuple[list[int], str]:
    """Shape and dtype from an ``.npy`` header; the array data is never read."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return [int(n) for n in shape], str(dtype)
