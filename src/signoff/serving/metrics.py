"""Per-version request counters and latency histograms, rendered in Prometheus text format.

Everything here is updated from the event loop only (handlers are ``async`` and never await
between reading and writing a counter), so no lock is needed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["LATENCY_BUCKETS", "MetricsRow", "VersionMetrics", "render_metrics"]

LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class VersionMetrics:
    """``/predict`` counts of one loaded version: by HTTP status, model failures, latency."""

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self.requests = 0
        self.errors = 0  # answers where the model itself failed (5xx)

    def observe(self, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.by_status[status] = self.by_status.get(status, 0) + 1
        # Prometheus buckets are "less than or equal": bisect_left finds the first bound >= it.
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.requests += 1
        if status >= 500:
            self.errors += 1


@dataclass(frozen=True, slots=True)
class MetricsRow:
    """One loaded version as the renderer sees it."""

    version: str
    digest: str
    share: int
    metrics: VersionMetrics


def render_metrics(
    endpoint: str, rows: Iterable[MetricsRow], log_counts: Mapping[str, int] | None = None
) -> str:
    """The Prometheus text of an endpoint: one series per loaded version."""
    rows = list(rows)
    ep = f'endpoint="{_escape(endpoint)}"'
    labels = {r.version: f'{ep},version="{_escape(r.version)}"' for r in rows}
    lines = [
        "# HELP signoff_requests_total Prediction requests by HTTP status.",
        "# TYPE signoff_requests_total counter",
    ]
    for r in rows:
        for status in sorted(r.metrics.by_status):
            lines.append(
                f'signoff_requests_total{{{labels[r.version]},status="{status}"}} '
                f"{r.metrics.by_status[status]}"
            )
    lines += [
        "# HELP signoff_model_errors_total Prediction requests the model failed on (5xx).",
        "# TYPE signoff_model_errors_total counter",
        *(f"signoff_model_errors_total{{{labels[r.version]}}} {r.metrics.errors}" for r in rows),
        "# HELP signoff_request_latency_seconds Time spent answering /predict.",
        "# TYPE signoff_request_latency_seconds histogram",
    ]
    bounds = [*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"]
    for r in rows:
        cumulative = 0
        for bound, n in zip(bounds, r.metrics.buckets, strict=True):
            cumulative += n
            lines.append(
                f'signoff_request_latency_seconds_bucket{{{labels[r.version]},le="{bound}"}} '
                f"{cumulative}"
            )
        lines += [
            f"signoff_request_latency_seconds_sum{{{labels[r.version]}}} {r.metrics.latency_sum!r}",
            f"signoff_request_latency_seconds_count{{{labels[r.version]}}} {r.metrics.requests}",
        ]
    lines += [
        "# HELP signoff_model_info The model versions this endpoint holds.",
        "# TYPE signoff_model_info gauge",
        *(
            f'signoff_model_info{{{labels[r.version]},digest="{_escape(r.digest)}"}} 1'
            for r in rows
        ),
        "# HELP signoff_traffic_share Share of prediction requests routed to a version (0..1).",
        "# TYPE signoff_traffic_share gauge",
        *(f"signoff_traffic_share{{{labels[r.version]}}} {r.share / 100:g}" for r in rows),
    ]
    if log_counts is not None:
        lines += [
            "# HELP signoff_predictions_logged_total Predictions written to the prediction log.",
            "# TYPE signoff_predictions_logged_total counter",
            f"signoff_predictions_logged_total{{{ep}}} {log_counts.get('logged', 0)}",
            "# HELP signoff_predictions_dropped_total Sampled predictions that could not be "
            "logged.",
            "# TYPE signoff_predictions_dropped_total counter",
            f"signoff_predictions_dropped_total{{{ep}}} {log_counts.get('dropped', 0)}",
        ]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
