"""Audit anchors: where the log's signed checkpoints live outside the database.

A :class:`FileAnchor` appends one JSON line per checkpoint to a file (mode 0600) in the home
folder, one file per database; a :class:`UrlAnchor` POSTs each checkpoint as JSON to a URL
(a write-once log, another team's service, an object store with retention). Either lets
``signoff audit verify`` notice the log's last entries deleted, or the whole log rewritten,
which no chain can show on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import httpx

from signoff.domain.audit import Checkpoint

__all__ = ["FileAnchor", "UrlAnchor", "checkpoint_file"]


def checkpoint_file(folder: Path, database_url: str) -> Path:
    """The checkpoint file for one database (named by a digest of its URL, sans password)."""
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return folder / f"checkpoints-{digest}.jsonl"


class FileAnchor:
    """Checkpoints appended to a local file, one JSON object per line, synced to disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def record(self, checkpoint: Checkpoint) -> None:
        """Append one line (a single ``write`` with ``O_APPEND``: processes do not interleave)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = (json.dumps(asdict(checkpoint), sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> tuple[list[Checkpoint], int]:
        """The checkpoints written so far, and how many lines could not be read.

        A torn last line (a crash while it was written) is one unreadable line; a forged
        line reads fine and fails its MAC in :func:`signoff.domain.audit.verify_checkpoints`.
        """
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return [], 0
        found: list[Checkpoint] = []
        bad = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                found.append(
                    Checkpoint(
                        seq=int(raw["seq"]),
                        head=str(raw["head"]),
                        at=float(raw["at"]),
                        mac=str(raw["mac"]),
                    )
                )
            except (ValueError, KeyError, TypeError):
                bad += 1
        return found, bad


class UrlAnchor:
    """Checkpoints POSTed as JSON to a URL; a non-2xx answer is a failure (logged)."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout

    def __str__(self) -> str:
        return self.url

    def record(self, checkpoint: Checkpoint) -> None:
        """POST ``{"seq", "head", "at", "mac"}``."""
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            client.post(self.url, json=asdict(checkpoint)).raise_for_status()
