"""Sampled prediction logging: the request path only appends to a list; a thread writes.

A sampled request gets one id per row (``prediction_ids`` in its answer). Every
``interval`` seconds (or sooner when ``batch`` rows wait) a background thread writes what
waits in one transaction to a sink: the store (``predictions`` table) or Parquet files.
A write that fails is reported on stderr and counted as dropped; nothing on the request
path waits for a database. ``POST /feedback`` labels a logged prediction; a label for a
prediction still waiting in memory first flushes it, so the pair is always consistent.
"""

from __future__ import annotations

import importlib
import random
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from signoff.domain.ports import PredictionStore
from signoff.domain.records import FeedbackRecord, PredictionRecord
from signoff.errors import NotFoundError, SignoffError

__all__ = ["ParquetSink", "PredictionLog", "PredictionSink", "StoreSink"]

_MAX_PENDING_ROWS = 100_000  # beyond this, sampled predictions are dropped (and counted)


class PredictionSink(Protocol):
    """Where logged predictions and feedback labels go."""

    def write(self, predictions: Sequence[PredictionRecord]) -> None: ...

    def add_feedback(self, feedback: FeedbackRecord) -> None: ...

    def close(self) -> None: ...


class StoreSink:
    """Predictions and labels in the signoff store (tables ``predictions``, ``feedback``)."""

    def __init__(self, store: PredictionStore, close: Any = None) -> None:
        self.store = store
        self._close = close

    def write(self, predictions: Sequence[PredictionRecord]) -> None:
        self.store.add_predictions(predictions)

    def add_feedback(self, feedback: FeedbackRecord) -> None:
        self.store.add_feedback(feedback)

    def close(self) -> None:
        if self._close is not None:
            self._close()


class ParquetSink:
    """Predictions and labels as Parquet files under ``folder`` (needs pyarrow).

    Each batch is one file ``predictions-<time>-<n>.parquet`` (inputs as a JSON string
    column); each label one ``feedback-<time>-<n>.parquet``. Only ids logged by this process
    can be labelled (the files are not read back).
    """

    def __init__(self, folder: Path) -> None:
        try:
            self._pa: Any = importlib.import_module("pyarrow")
            self._pq: Any = importlib.import_module("pyarrow.parquet")
        except ImportError:
            raise SignoffError(
                "logging predictions to Parquet needs pyarrow (pip install pyarrow)"
            ) from None
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._known: set[str] = set()
        self._n = 0

    def _path(self, kind: str) -> Path:
        self._n += 1
        return self.folder / f"{kind}-{time.time_ns()}-{self._n}.parquet"

    def write(self, predictions: Sequence[PredictionRecord]) -> None:
        import json

        table = self._pa.table(
            {
                "id": [p.id for p in predictions],
                "endpoint": [p.endpoint for p in predictions],
                "model_version": [p.model_version for p in predictions],
                "at": [p.at for p in predictions],
                "inputs": [json.dumps(p.inputs) for p in predictions],
                "output": [json.dumps(p.output) for p in predictions],
                "latency_ms": [p.latency_ms for p in predictions],
            }
        )
        self._pq.write_table(table, self._path("predictions"))
        self._known.update(p.id for p in predictions)

    def add_feedback(self, feedback: FeedbackRecord) -> None:
        import json

        if feedback.prediction_id not in self._known:
            raise NotFoundError(f"no prediction {feedback.prediction_id!r} logged here")
        table = self._pa.table(
            {
                "prediction_id": [feedback.prediction_id],
                "label": [json.dumps(feedback.label)],
                "at": [feedback.at],
            }
        )
        self._pq.write_table(table, self._path("feedback"))

    def close(self) -> None:
        pass


# (ids, model_version, rows, outputs, latency_ms, at) of one sampled request
_Entry = tuple[list[str], str, Sequence[Mapping[str, Any]], Sequence[Any], float, float]


class PredictionLog:
    """Sampling, buffering and the writer thread of one endpoint's prediction log."""

    def __init__(
        self,
        endpoint: str,
        sink: PredictionSink,
        sample: float,
        *,
        interval: float = 0.5,
        batch: int = 500,
    ) -> None:
        self.endpoint = endpoint
        self.sink = sink
        self.sample = sample
        self.interval = interval
        self.batch = batch
        self.logged = 0
        self.dropped = 0
        self._pending: list[_Entry] = []
        self._pending_rows = 0
        self._lock = threading.Lock()  # guards _pending (request path vs writer)
        self._write_lock = threading.Lock()  # one writer at a time, in order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"prediction-log[{endpoint}]", daemon=True
        )
        self._thread.start()

    def sampled(self) -> bool:
        """Whether the next request is logged."""
        return self.sample >= 1.0 or random.random() < self.sample

    def record(
        self,
        model_version: str,
        rows: Sequence[Mapping[str, Any]],
        outputs: Sequence[Any],
        latency_ms: float,
    ) -> list[str]:
        """Queue one request's rows and outputs; returns their prediction ids at once."""
        ids = [uuid.uuid4().hex for _ in rows]
        with self._lock:
            if self._pending_rows + len(ids) > _MAX_PENDING_ROWS:
                self.dropped += len(ids)
                return ids
            self._pending.append((ids, model_version, rows, outputs, latency_ms, time.time()))
            self._pending_rows += len(ids)
            full = self._pending_rows >= self.batch
        if full:
            self._wake.set()
        return ids

    def add_feedback(self, prediction_id: str, label: Any) -> None:
        """Store a label for a logged prediction (NotFoundError for an unknown id)."""
        with self._write_lock:
            self._flush_locked()
            self.sink.add_feedback(FeedbackRecord(prediction_id, label, time.time()))

    def counts(self) -> dict[str, int]:
        """Rows written and rows dropped so far."""
        return {"logged": self.logged, "dropped": self.dropped}

    def flush(self) -> None:
        """Write everything that waits now."""
        with self._write_lock:
            self._flush_locked()

    def close(self) -> None:
        """Stop the writer thread after a last flush."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()
        self.sink.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def _flush_locked(self) -> None:
        with self._lock:
            entries, self._pending, self._pending_rows = self._pending, [], 0
        if not entries:
            return
        records = [
            PredictionRecord(pid, self.endpoint, version, at, dict(row), output, latency)
            for ids, version, rows, outputs, latency, at in entries
            for pid, row, output in zip(ids, rows, outputs, strict=True)
        ]
        try:
            self.sink.write(records)
        except Exception as exc:  # the store is down or full: report, count, keep serving
            with self._lock:
                self.dropped += len(records)
            print(
                f"signoff.serving[{self.endpoint}]: could not log {len(records)} prediction(s): "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            return
        with self._lock:
            self.logged += len(records)
