"""The table of loaded model versions of one endpoint and the traffic split between them.

A request picks its version once, at its start, and keeps it to the end; a change of the
split replaces one immutable routing tuple (a reference switch), so no request is ever
between two versions and none fails across a swap. Every method runs on the event loop.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from signoff.registry.flavors import LoadedModel
from signoff.serving.metrics import MetricsRow, VersionMetrics

__all__ = ["Router", "ServedVersion", "TrafficError", "warm_up"]


class TrafficError(ValueError):
    """A traffic split or a version change that cannot be applied (the reason is the message).

    ``status`` is the HTTP status the admin API answers with: 409 when the request does not
    fit the endpoint's current state, 422 when it is invalid in itself.
    """

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class ServedVersion:
    """One loaded model version: the model, what it is, and its own counters."""

    label: str
    digest: str
    model: LoadedModel
    model_dir: str | None = None
    metrics: VersionMetrics = field(default_factory=VersionMetrics)
    in_flight: int = 0
    failures_logged: int = 0

    def describe(self, endpoint: str) -> dict[str, Any]:
        """The ``/version`` body of this version."""
        return {
            "endpoint": endpoint,
            "model_version": self.label,
            "digest": self.digest,
            "flavor": self.model.meta.flavor,
            "signature": [{"name": f.name, "dtype": f.dtype} for f in self.model.meta.signature],
        }


def warm_up(model: LoadedModel) -> None:
    """Predict once for a row of zeros (``False`` for booleans) so the first request is fast."""
    row = {f.name: (False if f.dtype == "bool" else 0) for f in model.meta.signature}
    model.predict(model.rows_to_matrix([row]))


class Router:
    """Loaded versions and the share of requests each gets (percent, summing to 100)."""

    def __init__(self, first: ServedVersion) -> None:
        self._versions: dict[str, ServedVersion] = {first.label: first}
        self._shares: dict[str, int] = {first.label: 100}
        # (cumulative probability, version); one entry means no random draw at all
        self._table: tuple[tuple[float, ServedVersion], ...] = ((1.0, first),)

    def pick(self) -> ServedVersion:
        """The version that answers the next request."""
        table = self._table
        if len(table) == 1:
            return table[0][1]
        draw = random.random()
        for bound, version in table:
            if draw < bound:
                return version
        return table[-1][1]

    @property
    def primary(self) -> ServedVersion:
        """The version with the largest share (the stable one during a canary)."""
        label = max(self._shares, key=lambda k: self._shares[k])
        return self._versions[label]

    def get(self, label: str) -> ServedVersion | None:
        """A loaded version by label."""
        return self._versions.get(label)

    def shares(self) -> dict[str, int]:
        """Percent of requests per loaded version (0 for a version that gets none)."""
        return {label: self._shares.get(label, 0) for label in self._versions}

    def add(self, version: ServedVersion) -> None:
        """Hold a newly loaded version beside the others, with no traffic yet."""
        if version.label in self._versions:
            raise TrafficError(f"version {version.label} is already loaded")
        self._versions[version.label] = version

    def set_traffic(self, shares: Mapping[str, int]) -> None:
        """Switch the split in one step; versions not named get no traffic."""
        unknown = sorted(set(shares) - set(self._versions))
        if unknown:
            raise TrafficError(f"version(s) not loaded: {', '.join(unknown)}")
        if any(share < 0 or share > 100 for share in shares.values()):
            raise TrafficError("every share must be between 0 and 100", 422)
        if sum(shares.values()) != 100:
            raise TrafficError(f"shares must add up to 100, not {sum(shares.values())}", 422)
        kept = {label: share for label, share in shares.items() if share > 0}
        table: list[tuple[float, ServedVersion]] = []
        total = 0
        for label, share in kept.items():
            total += share
            table.append((total / 100, self._versions[label]))
        self._shares = kept
        self._table = tuple(table)  # the switch: one reference assignment

    def remove(self, label: str) -> ServedVersion:
        """Forget a version that gets no traffic (the caller drains it first)."""
        version = self._versions.get(label)
        if version is None:
            raise KeyError(label)
        if self._shares.get(label, 0) > 0:
            raise TrafficError(f"version {label} still gets traffic; move it away first")
        del self._versions[label]
        return version

    def metrics_rows(self) -> list[MetricsRow]:
        """Every loaded version with its share and counters, for ``/metrics``."""
        return [
            MetricsRow(v.label, v.digest, self._shares.get(v.label, 0), v.metrics)
            for v in self._versions.values()
        ]

    def state(self) -> list[dict[str, Any]]:
        """Every loaded version with its share and counts, for ``/admin/state``."""
        return [
            {
                "model_version": v.label,
                "digest": v.digest,
                "model_dir": v.model_dir,
                "flavor": v.model.meta.flavor,
                "traffic": self._shares.get(v.label, 0),
                "requests": v.metrics.requests,
                "errors": v.metrics.errors,
                "in_flight": v.in_flight,
            }
            for v in self._versions.values()
        ]
