"""The run's lease: one driving process at a time, renewed while it works.

A lease is a row in the store (owner, expiry). The driver claims it before its first step,
renews it every third of its length (by the ``Clock``: the same time the store compares the
expiry with) and releases it when it returns; a driver that died leaves a lease that expires,
and the next ``drive`` takes the run over.
"""

from __future__ import annotations

from dataclasses import dataclass

from signoff.domain.ports import Clock, Store
from signoff.errors import ConflictError

__all__ = ["Lease", "RunBusyError"]


class RunBusyError(ConflictError):
    """Another live process holds the run's lease and is driving it."""


@dataclass
class Lease:
    """One driver's hold on one run."""

    store: Store
    clock: Clock
    run_id: str
    owner: str
    seconds: float
    renew_at: float = 0.0

    def claim(self) -> None:
        """Take the run, or raise :class:`RunBusyError` naming who holds it."""
        now = self.clock.now()
        holder = self.store.claim_run(self.run_id, self.owner, now=now, ttl=self.seconds)
        if holder is not None:
            raise RunBusyError(f"run {self.run_id} is being driven by {holder}")
        self.renew_at = now + self.seconds / 3

    def renew_if_due(self) -> None:
        """Renew the lease once a third of it has passed; raise if another process took it."""
        now = self.clock.now()
        if now < self.renew_at:
            return
        holder = self.store.claim_run(self.run_id, self.owner, now=now, ttl=self.seconds)
        if holder is not None:
            raise RunBusyError(f"lost the lease of run {self.run_id} to {holder}")
        self.renew_at = now + self.seconds / 3

    def release(self) -> None:
        """Give the run up (another process may drive it at once)."""
        self.store.release_run(self.run_id, self.owner)
