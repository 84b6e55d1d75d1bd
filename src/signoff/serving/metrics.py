"""Per-version request counters and latency histograms, exposed through ``prometheus_client``.

Each loaded version counts its own requests in ``prometheus_client`` metrics that belong to
no registry. The endpoint app has a registry of its own (never the process-wide default:
several apps can live in one process, each with its own counts) holding one collector that,
at scrape time, takes the versions loaded then and labels their samples with the endpoint
and the version. A version that is unloaded thus leaves ``/metrics`` with no bookkeeping.
The library does the counting (its values are locked, so any thread may observe), the
bucketing, the label escaping, the exposition format and its content type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

__all__ = [
    "LATENCY_BUCKETS",
    "MetricsRow",
    "VersionMetrics",
    "metrics_registry",
    "render_metrics",
]

LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

_REQUESTS = ("signoff_requests", "Prediction requests by HTTP status.")
_ERRORS = ("signoff_model_errors", "Prediction requests the model failed on (5xx).")
_LATENCY = ("signoff_request_latency_seconds", "Time spent answering /predict.")
_INFO = ("signoff_model_info", "The model versions this endpoint holds.")
_SHARE = ("signoff_traffic_share", "Share of prediction requests routed to a version (0..1).")
_LOGGED = ("signoff_predictions_logged", "Predictions written to the prediction log.")
_DROPPED = ("signoff_predictions_dropped", "Sampled predictions that could not be logged.")


class VersionMetrics:
    """``/predict`` counts of one loaded version: by HTTP status, model failures, latency."""

    def __init__(self) -> None:
        # registry=None: these belong to one version, and the endpoint's collector reads them.
        self._requests = Counter(*_REQUESTS, ["status"], registry=None)
        self._errors = Counter(*_ERRORS, registry=None)
        self._latency = Histogram(*_LATENCY, buckets=LATENCY_BUCKETS, registry=None)
        self._by_status: dict[int, Counter] = {}  # label lookups cost more than the count

    def observe(self, status: int, seconds: float) -> None:
        """Count one answered request."""
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self._requests.labels(status=str(status))
        child.inc()
        self._latency.observe(seconds)
        if status >= 500:
            self._errors.inc()

    @property
    def requests(self) -> int:
        """Answered requests, whatever their status."""
        return int(_value(self._latency, "_count"))

    @property
    def errors(self) -> int:
        """Answers where the model itself failed (5xx)."""
        return int(_value(self._errors, "_total"))

    def by_status(self) -> dict[str, float]:
        """Answered requests per HTTP status (as the label text)."""
        return {
            s.labels["status"]: s.value
            for family in self._requests.collect()
            for s in family.samples
            if s.name.endswith("_total")
        }

    def buckets(self) -> tuple[list[tuple[str, float]], float]:
        """The latency histogram: cumulative ``(le, count)`` pairs ending at +Inf, and the sum."""
        pairs: list[tuple[str, float]] = []
        total = 0.0
        for family in self._latency.collect():
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    pairs.append((s.labels["le"], s.value))
                elif s.name.endswith("_sum"):
                    total = s.value
        return pairs, total


def _value(metric: Counter | Histogram, suffix: str) -> float:
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith(suffix) and not s.labels:
                return s.value
    return 0.0


@dataclass(frozen=True, slots=True)
class MetricsRow:
    """One loaded version as the collector sees it."""

    version: str
    digest: str
    share: int
    metrics: VersionMetrics


class _EndpointCollector(Collector):
    """Every loaded version's series, read when ``/metrics`` is scraped."""

    def __init__(
        self,
        endpoint: str,
        rows: Callable[[], Iterable[MetricsRow]],
        log_counts: Callable[[], Mapping[str, int]] | None,
    ) -> None:
        self._endpoint = endpoint
        self._rows = rows
        self._log_counts = log_counts

    def collect(self) -> Iterator[Metric]:
        ep = self._endpoint
        rows = list(self._rows())
        requests = CounterMetricFamily(*_REQUESTS, labels=["endpoint", "version", "status"])
        errors = CounterMetricFamily(*_ERRORS, labels=["endpoint", "version"])
        latency = HistogramMetricFamily(*_LATENCY, labels=["endpoint", "version"])
        info = GaugeMetricFamily(*_INFO, labels=["endpoint", "version", "digest"])
        share = GaugeMetricFamily(*_SHARE, labels=["endpoint", "version"])
        for r in rows:
            for status, count in sorted(r.metrics.by_status().items()):
                requests.add_metric([ep, r.version, status], count)
            errors.add_metric([ep, r.version], r.metrics.errors)
            buckets, total = r.metrics.buckets()
            latency.add_metric([ep, r.version], buckets, total)
            info.add_metric([ep, r.version, r.digest], 1)
            share.add_metric([ep, r.version], r.share / 100)
        yield from (requests, errors, latency, info, share)
        if self._log_counts is not None:
            counts = self._log_counts()
            logged = CounterMetricFamily(*_LOGGED, labels=["endpoint"])
            logged.add_metric([ep], counts.get("logged", 0))
            dropped = CounterMetricFamily(*_DROPPED, labels=["endpoint"])
            dropped.add_metric([ep], counts.get("dropped", 0))
            yield from (logged, dropped)


def metrics_registry(
    endpoint: str,
    rows: Callable[[], Iterable[MetricsRow]],
    log_counts: Callable[[], Mapping[str, int]] | None = None,
) -> CollectorRegistry:
    """A registry of one endpoint's own: its loaded versions (``rows``) and prediction log."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_EndpointCollector(endpoint, rows, log_counts))
    return registry


def render_metrics(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The exposition the scraper asked for (``Accept``) and its content type.

    Prometheus text 0.0.4 by default; OpenMetrics for a scraper that asks for it.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
