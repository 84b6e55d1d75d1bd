"""What a run ran with: the code version and the software environment.

Recorded once per run when it starts, so a run can be reproduced and a reproduction can say
what differs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["code_version", "environment"]


def _git(folder: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode(errors="replace")


def code_version(folder: Path | None) -> dict[str, Any]:
    """The git commit of ``folder`` and a digest of uncommitted changes (None outside git)."""
    if folder is None:
        return {"git_commit": None, "dirty": None, "dirty_digest": None}
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "dirty": None, "dirty_digest": None}
    diff = _git(folder, "diff", "HEAD", "--binary", "--", ".") or ""
    untracked = _git(folder, "ls-files", "--others", "--exclude-standard", "--", ".") or ""
    h = hashlib.sha256(diff.encode())
    for name in sorted(untracked.split()):
        path = folder / name
        if path.is_file():
            h.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    dirty = bool(diff.strip() or untracked.strip())
    branch = (_git(folder, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None
    return {
        "git_commit": commit.strip(),
        "git_branch": branch,
        "dirty": dirty,
        "dirty_digest": h.hexdigest() if dirty else None,
    }


def environment() -> dict[str, Any]:
    """Python, platform, and every installed distribution with its version (and a digest)."""
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    lock = "\n".join(f"{k}=={v}" for k, v in sorted(packages.items()))
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": dict(sorted(packages.items())),
        "lock_digest": hashlib.sha256(lock.encode()).hexdigest(),
    }
