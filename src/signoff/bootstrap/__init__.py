"""The one place that wires concrete parts (store, executor, endpoints) into the services."""

from signoff.bootstrap.settings import Settings
from signoff.bootstrap.wiring import App, build_app

__all__ = ["App", "Settings", "build_app"]
