"""build_app: settings in, a ready engine and store out."""

from __future__ import annotations

import time
from dataclasses import dataclass

from signoff.bootstrap.settings import Settings
from signoff.domain.ports import Executor
from signoff.endpoints.local import LocalEndpointRunner
from signoff.engine import Engine, EngineObserver
from signoff.executors.local import LocalExecutor, stop_leftover
from signoff.store.sql import SqlStore, open_store

__all__ = ["App", "SystemClock", "build_app"]


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


@dataclass
class App:
    """The wired parts one process uses."""

    settings: Settings
    store: SqlStore
    engine: Engine
    endpoints: LocalEndpointRunner

    def close(self) -> None:
        self.store.close()


def build_app(settings: Settings, observer: EngineObserver | None = None) -> App:
    """Open the store (migrating it) and wire the engine with the local executor."""
    home = settings.resolved_home
    home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_database_url)
    endpoints = LocalEndpointRunner(home)
    slots = settings.slots

    def make_executor() -> Executor:
        return LocalExecutor(slots=slots)

    engine = Engine(
        store=store,
        clock=SystemClock(),
        home=home,
        executor_factory=make_executor,
        endpoints=endpoints,
        lease_seconds=settings.lease_seconds,
        stop_leftover=stop_leftover,
    )
    if observer is not None:
        engine.observer = observer
    return App(settings=settings, store=store, engine=engine, endpoints=endpoints)
