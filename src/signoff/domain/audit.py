"""The audit log's hash chain (pure): each entry's hash covers its content and the previous hash.

Editing, deleting or reordering any entry breaks the chain from that entry on, which
:func:`verify_chain` reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GENESIS", "AuditEntry", "ChainBreak", "entry_hash", "verify_chain"]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One appended event: what happened to which gate, who did it, and the chain hashes."""

    seq: int
    at: float
    event: str  # gate_opened, notified, reminded, decided, refused, expired, superseded, ...
    run_id: str | None
    gate_id: str | None
    actor: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where the chain stops being consistent, and why."""

    seq: int
    reason: str


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: float,
    event: str,
    run_id: str | None,
    gate_id: str | None,
    actor: str | None,
    data: dict[str, Any],
) -> str:
    """sha256 over the previous hash and this entry's canonical content."""
    body = json.dumps(
        {
            "seq": seq,
            "at": repr(float(at)),
            "event": event,
            "run_id": run_id,
            "gate_id": gate_id,
            "actor": actor,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def verify_chain(entries: Sequence[AuditEntry]) -> list[ChainBreak]:
    """Check every link: sequence without gaps, each prev_hash the previous hash, each hash."""
    breaks: list[ChainBreak] = []
    prev = GENESIS
    expected_seq = entries[0].seq if entries else 1
    if entries and expected_seq != 1:
        breaks.append(ChainBreak(entries[0].seq, "the log does not start at entry 1"))
    for entry in entries:
        if entry.seq != expected_seq:
            breaks.append(ChainBreak(entry.seq, f"entry {expected_seq} is missing or out of order"))
        if entry.prev_hash != prev:
            breaks.append(ChainBreak(entry.seq, "does not link to the entry before it"))
        recomputed = entry_hash(
            entry.prev_hash,
            seq=entry.seq,
            at=entry.at,
            event=entry.event,
            run_id=entry.run_id,
            gate_id=entry.gate_id,
            actor=entry.actor,
            data=entry.data,
        )
        if recomputed != entry.hash:
            breaks.append(ChainBreak(entry.seq, "its content was changed after it was written"))
        prev = entry.hash
        expected_seq = entry.seq + 1
    return breaks
