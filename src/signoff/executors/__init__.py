"""Executors: where task commands run (local subprocesses, or a Ray cluster)."""

from signoff.executors.local import LocalExecutor

__all__ = ["LocalExecutor"]
