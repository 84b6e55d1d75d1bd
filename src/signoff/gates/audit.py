"""``signoff audit verify``: the keyed chain, its checkpoints and the decisions, checked together.

What a clean report proves: every entry was written by a holder of the audit key and not
changed since; none is missing in the middle; none that a checkpoint saw is missing at the
end; every decision row is exactly what its audit entry says, and every decision entry has
its row. What it cannot prove: entries appended after the last checkpoint and then deleted
(the window is one commit, as checkpoints follow every audited commit), or a rewrite by
someone who holds the key *and* can rewrite every anchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from signoff.domain.audit import (
    LEGACY,
    ChainBreak,
    Checkpoint,
    match_decisions,
    verify_chain,
    verify_checkpoints,
)
from signoff.domain.ports import GateStore

__all__ = ["AuditReport", "verify_audit"]


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What ``audit verify`` checked and what it found."""

    entries: int
    legacy_entries: int
    checkpoints: int
    checkpoints_verified: int
    unreadable_checkpoints: int
    decisions: int
    decisions_matched: int
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks

    def summary(self) -> str:
        """One line: what was verified, e.g. ``12 entries, chain and 9 checkpoints verified``."""
        if self.checkpoints:
            chain = f"chain and {self.checkpoints_verified} checkpoints verified"
        else:
            chain = "chain verified (no checkpoints to compare with)"
        text = (
            f"{self.entries} entries, {chain}, {self.decisions_matched} of {self.decisions} "
            "decisions matched"
        )
        if self.legacy_entries:
            text += f"; {self.legacy_entries} entries predate the keyed chain"
        if self.unreadable_checkpoints:
            text += f"; {self.unreadable_checkpoints} unreadable checkpoint line(s)"
        return text


def verify_audit(
    store: GateStore,
    key: bytes,
    checkpoints: Sequence[Checkpoint] = (),
    *,
    unreadable_checkpoints: int = 0,
) -> AuditReport:
    """Check the whole log under ``key`` against ``checkpoints`` and the decisions table."""
    entries = store.list_audit()
    decisions = store.all_decisions()
    breaks = verify_chain(entries, key)
    verified, checkpoint_breaks = verify_checkpoints(entries, checkpoints, key)
    matched, decision_breaks = match_decisions(entries, decisions)
    everything = sorted(
        [*breaks, *checkpoint_breaks, *decision_breaks], key=lambda b: (b.seq == 0, b.seq)
    )
    return AuditReport(
        entries=len(entries),
        legacy_entries=sum(1 for e in entries if e.scheme == LEGACY),
        checkpoints=len(checkpoints),
        checkpoints_verified=verified,
        unreadable_checkpoints=unreadable_checkpoints,
        decisions=len(decisions),
        decisions_matched=matched,
        breaks=_dedupe(everything),
    )


def _dedupe(breaks: list[ChainBreak]) -> list[ChainBreak]:
    seen: set[tuple[int, str]] = set()
    out = []
    for b in breaks:
        if (b.seq, b.reason) not in seen:
            seen.add((b.seq, b.reason))
            out.append(b)
    return out
