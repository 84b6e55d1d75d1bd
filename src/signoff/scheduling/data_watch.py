"""What a data trigger watches: a fingerprint of a path's contents, local or through fsspec.

A local path is listed with ``os.scandir`` (recursively for a folder): every file's relative
name, size and modification time (ns) go into a sha256 digest. An URL (``s3://bucket/in/``)
is listed through fsspec when it is installed (signoff does not depend on it): names, sizes
and the modification time or ETag the filesystem reports. No file is read.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff.errors import SignoffError

__all__ = ["PathSnapshot", "changes", "snapshot"]

_MAX_ENTRIES = 10_000  # entries kept for the change list; the digest covers them all
_SHOWN = 20


@dataclass(frozen=True)
class PathSnapshot:
    """A path's contents at one moment: a digest and (up to a cap) its entries."""

    path: str
    digest: str
    files: int
    entries: dict[str, str] = field(default_factory=dict)  # name -> "size:mtime"


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def snapshot(path: str, base_dir: Path) -> PathSnapshot:
    """Fingerprint ``path`` (relative paths start at ``base_dir``)."""
    if _is_url(path):
        listing = _remote_listing(path)
        where = path
    else:
        local = Path(path.removeprefix("file://")).expanduser()
        local = local if local.is_absolute() else base_dir / local
        listing = _local_listing(local)
        where = str(local)
    digest = hashlib.sha256()
    for name in sorted(listing):
        digest.update(json.dumps([name, listing[name]]).encode())
        digest.update(b"\n")
    kept = dict(sorted(listing.items())[:_MAX_ENTRIES])
    return PathSnapshot(where, digest.hexdigest(), len(listing), kept)


def _local_listing(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    if root.is_file():
        st = root.stat()
        return {root.name: f"{st.st_size}:{st.st_mtime_ns}"}
    found: dict[str, str] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file():
                        st = entry.stat()
                        name = Path(entry.path).relative_to(root).as_posix()
                        found[name] = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            continue  # a folder that vanished while listing
    return found


def _remote_listing(url: str) -> dict[str, str]:
    try:
        fsspec: Any = importlib.import_module("fsspec")
    except ImportError:
        raise SignoffError(
            f"watching {url} needs fsspec, which signoff does not install "
            "(pip install fsspec, plus the filesystem's package, e.g. s3fs)"
        ) from None
    fs, root = fsspec.core.url_to_fs(url)
    try:
        infos = fs.find(root, detail=True)
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for name, info in infos.items():
        stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""
        rel = str(name)[len(str(root)) :].lstrip("/") or str(name)
        found[rel] = f"{info.get('size', '')}:{stamp}"
    return found


def changes(before: dict[str, str], after: dict[str, str]) -> dict[str, Any]:
    """What changed between two listings: added, removed and changed names (the first few)."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(n for n in set(before) & set(after) if before[n] != after[n])
    return {
        "added": added[:_SHOWN],
        "removed": removed[:_SHOWN],
        "changed": changed[:_SHOWN],
        "counts": {"added": len(added), "removed": len(removed), "changed": len(changed)},
    }
