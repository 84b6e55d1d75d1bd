"""The run engine: plans runs, drives task runs through the store, runs built-in tasks."""

from signoff.engine.engine import Engine, EngineObserver

__all__ = ["Engine", "EngineObserver"]
