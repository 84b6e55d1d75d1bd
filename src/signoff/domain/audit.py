"""The audit log's keyed chain, its checkpoints and its tie to the decisions table (pure).

Each entry's ``hash`` is an HMAC-SHA256, under a key kept outside the database, of the
previous entry's hash and this entry's canonical content. Without the key nobody can write a
row that verifies, nor rewrite a row and recompute the rest. What a chain alone cannot show
(its last rows deleted, or the whole log replaced by someone holding the key) the
**checkpoints** show: signed ``(seq, head)`` pairs written outside the database after every
commit that appended entries. And every decision row names, and is named by, one audit entry
(``data.decision_id``), so an edited, deleted or forged decision row is caught by
:func:`match_decisions`.

Entries written before the log was keyed (``scheme == "sha256"``) verify with plain sha256;
they may only precede keyed ones, and the first keyed entry's MAC covers their head.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from signoff.domain.records import DecisionRecord

__all__ = [
    "GENESIS",
    "KEYED",
    "LEGACY",
    "AuditEntry",
    "ChainBreak",
    "Checkpoint",
    "checkpoint_mac",
    "entry_hash",
    "make_checkpoint",
    "match_decisions",
    "verify_chain",
    "verify_checkpoints",
]

GENESIS = "0" * 64
KEYED = "hmac-sha256"
LEGACY = "sha256"
_DECISION_EVENTS = ("decided", "refused")


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
    scheme: str = KEYED


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where the log stops being consistent, and why (``seq`` 0: not tied to one entry)."""

    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement, kept outside the database: entry ``seq`` existed with hash ``head``."""

    seq: int
    head: str
    at: float
    mac: str


def entry_hash(
    prev_hash: str,
    *,
    key: bytes | None,
    seq: int,
    at: float,
    event: str,
    run_id: str | None,
    gate_id: str | None,
    actor: str | None,
    data: dict[str, Any],
) -> str:
    """HMAC-SHA256 (or, with ``key=None``, the legacy sha256) of the previous hash and content."""
    content = {
        "seq": seq,
        "at": repr(float(at)),
        "event": event,
        "run_id": run_id,
        "gate_id": gate_id,
        "actor": actor,
        "data": data,
    }
    body = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    message = (prev_hash + body).encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _recompute(entry: AuditEntry, key: bytes) -> str:
    return entry_hash(
        entry.prev_hash,
        key=key if entry.scheme == KEYED else None,
        seq=entry.seq,
        at=entry.at,
        event=entry.event,
        run_id=entry.run_id,
        gate_id=entry.gate_id,
        actor=entry.actor,
        data=entry.data,
    )


def verify_chain(entries: Sequence[AuditEntry], key: bytes) -> list[ChainBreak]:
    """Check every link: sequence without gaps, each prev_hash the previous hash, each MAC."""
    breaks: list[ChainBreak] = []
    prev = GENESIS
    expected_seq = entries[0].seq if entries else 1
    if entries and expected_seq != 1:
        breaks.append(ChainBreak(entries[0].seq, "the log does not start at entry 1"))
    keyed_seen = False
    for entry in entries:
        if entry.seq != expected_seq:
            breaks.append(ChainBreak(entry.seq, f"entry {expected_seq} is missing or out of order"))
        if entry.prev_hash != prev:
            breaks.append(ChainBreak(entry.seq, "does not link to the entry before it"))
        if entry.scheme not in (KEYED, LEGACY):
            breaks.append(ChainBreak(entry.seq, f"unknown hash scheme {entry.scheme!r}"))
        elif entry.scheme == LEGACY and keyed_seen:
            breaks.append(ChainBreak(entry.seq, "an unkeyed entry after keyed ones (forged)"))
        elif not hmac.compare_digest(_recompute(entry, key), entry.hash):
            breaks.append(
                ChainBreak(
                    entry.seq,
                    "its content was changed after it was written, or it was not written "
                    "by signoff (the MAC does not match)",
                )
            )
        keyed_seen = keyed_seen or entry.scheme == KEYED
        prev = entry.hash
        expected_seq = entry.seq + 1
    return breaks


def checkpoint_mac(key: bytes, seq: int, head: str, at: float) -> str:
    """The MAC that makes a checkpoint unforgeable without the key."""
    message = f"signoff-audit-checkpoint\0{seq}\0{head}\0{float(at)!r}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def make_checkpoint(key: bytes, seq: int, head: str, at: float) -> Checkpoint:
    """A checkpoint for the log's head after entry ``seq``."""
    return Checkpoint(seq=seq, head=head, at=at, mac=checkpoint_mac(key, seq, head, at))


def verify_checkpoints(
    entries: Sequence[AuditEntry], checkpoints: Iterable[Checkpoint], key: bytes
) -> tuple[int, list[ChainBreak]]:
    """Check the log against its checkpoints: (how many verified, what does not hold).

    A genuine checkpoint whose entry is missing means the log was truncated; one whose entry
    has another hash means the log was rewritten (with the key) from there on.
    """
    by_seq = {e.seq: e for e in entries}
    last = max(by_seq, default=0)
    verified = 0
    breaks: list[ChainBreak] = []
    for cp in checkpoints:
        if not hmac.compare_digest(checkpoint_mac(key, cp.seq, cp.head, cp.at), cp.mac):
            breaks.append(ChainBreak(cp.seq, "a checkpoint is forged (its MAC does not match)"))
            continue
        entry = by_seq.get(cp.seq)
        if entry is None:
            breaks.append(
                ChainBreak(
                    cp.seq,
                    f"entry {cp.seq} existed (a checkpoint says so) but the log ends at "
                    f"{last}: entries were deleted",
                )
            )
        elif not hmac.compare_digest(entry.hash, cp.head):
            breaks.append(ChainBreak(cp.seq, "differs from its checkpoint: the log was rewritten"))
        else:
            verified += 1
    return verified, breaks


def _expected(entry: AuditEntry) -> dict[str, Any]:
    data = entry.data
    if entry.event == "refused":
        return {
            "gate_id": entry.gate_id,
            "actor": entry.actor,
            "decision": "refused",
            "comment": data.get("reason"),
            "channel": data.get("channel"),
        }
    return {
        "gate_id": entry.gate_id,
        "actor": entry.actor,
        "decision": data.get("decision"),
        "comment": data.get("comment"),
        "channel": data.get("channel"),
        "model_digest": data.get("model_digest"),
        "report_digest": data.get("report_digest"),
    }


def _actual(row: DecisionRecord, keys: Iterable[str]) -> dict[str, Any]:
    values = {
        "gate_id": row.gate_id,
        "actor": row.actor,
        "decision": row.decision,
        "comment": row.comment,
        "channel": row.channel,
        "model_digest": row.model_digest,
        "report_digest": row.report_digest,
    }
    return {k: values[k] for k in keys}


def match_decisions(
    entries: Sequence[AuditEntry], decisions: Sequence[DecisionRecord]
) -> tuple[int, list[ChainBreak]]:
    """Tie every decision row to its audit entry and back: (how many match, what does not).

    Entries from before decisions were bound (no ``decision_id``) are matched by gate,
    actor and verb instead.
    """
    rows = {d.id: d for d in decisions}
    used: set[str] = set()
    legacy: list[AuditEntry] = []
    matched = 0
    breaks: list[ChainBreak] = []
    for entry in entries:
        if entry.event not in _DECISION_EVENTS:
            continue
        decision_id = entry.data.get("decision_id")
        if not isinstance(decision_id, str):
            legacy.append(entry)
            continue
        row = rows.get(decision_id)
        if row is None or decision_id in used:
            breaks.append(
                ChainBreak(
                    entry.seq,
                    f"records decision {decision_id}, which is missing from the decisions "
                    "table (deleted)",
                )
            )
            continue
        used.add(decision_id)
        expected = _expected(entry)
        actual = _actual(row, expected)
        if actual != expected:
            changed = ", ".join(sorted(k for k in expected if expected[k] != actual[k]))
            breaks.append(
                ChainBreak(entry.seq, f"decision {decision_id} differs from it ({changed})")
            )
            continue
        matched += 1
    unbound = [d for d in decisions if d.id not in used]
    for entry in legacy:
        verb = "refused" if entry.event == "refused" else entry.data.get("decision")
        twin = next(
            (
                d
                for d in unbound
                if (d.gate_id, d.actor, d.decision) == (entry.gate_id, entry.actor, verb)
            ),
            None,
        )
        if twin is None:
            breaks.append(ChainBreak(entry.seq, "records a decision missing from the table"))
            continue
        unbound.remove(twin)
        matched += 1
    breaks.extend(
        ChainBreak(
            0,
            f"decision {d.id} ({d.actor} {d.decision}) has no audit entry: it was inserted "
            "outside signoff",
        )
        for d in unbound
    )
    return matched, breaks
