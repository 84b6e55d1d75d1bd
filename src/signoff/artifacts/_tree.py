"""Folder manifests: a folder stored as its files plus one canonical JSON naming them.

The manifest is ``{"files": {"rel/path": "<sha256>", ...}}`` with sorted keys and no spaces,
so the same folder always gives the same manifest digest. Stores build on three calls of
their own (``put``, ``put_bytes``, ``fetch``); this module holds what they share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from signoff.errors import ExecutionError
from signoff.tracking.fingerprints import file_sha256

__all__ = ["iter_files", "manifest_bytes", "read_manifest", "safe_relative"]


def iter_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file under ``folder`` (links skipped), as (relative posix path, path)."""
    if not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if not path.is_symlink():
                yield path.relative_to(folder).as_posix(), path


def manifest_bytes(files: dict[str, str]) -> bytes:
    """The canonical manifest of a folder whose files have these digests."""
    body = {"files": dict(sorted(files.items()))}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def read_manifest(data: bytes) -> dict[str, str]:
    """The files a manifest names (relative path -> digest); refuses one that escapes."""
    try:
        files = json.loads(data)["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExecutionError(f"not a folder manifest: {exc}") from None
    if not isinstance(files, dict):
        raise ExecutionError("not a folder manifest: 'files' is not an object")
    for rel, digest in files.items():
        safe_relative(rel)
        if not (isinstance(digest, str) and len(digest) == 64):
            raise ExecutionError(f"folder manifest: bad digest for {rel!r}")
    return files


def safe_relative(rel: str) -> PurePosixPath:
    """A manifest path that stays inside its folder (no absolute path, no ``..``)."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ExecutionError(f"folder manifest: path {rel!r} leaves its folder")
    return path


def place_checked(fetch: Callable[[str, Path, str], Path], digest: str, target: Path) -> None:
    """Fetch ``digest`` to ``target`` through a temporary name; check it; rename it in place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = fetch(digest, target.parent, f".{target.name}.partial")
    if file_sha256(partial) != digest:
        partial.unlink(missing_ok=True)
        raise ExecutionError(f"artifact {digest[:12]}… changed in the store: digest mismatch")
    os.replace(partial, target)
