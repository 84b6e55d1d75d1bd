"""Executors: where task commands run (local subprocesses now; Ray later)."""

from signoff.executors.local import LocalExecutor

__all__ = ["LocalExecutor"]
