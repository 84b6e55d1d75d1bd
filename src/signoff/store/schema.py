"""Every table of the store, registered on one MetaData (what migrations must produce)."""

import signoff.store._schedule_tables  # (registers its tables)
import signoff.store._session_tables  # noqa: F401  (registers its tables)
from signoff.store import _gate_tables  # noqa: F401  (registers its tables)
from signoff.store._tables import metadata

__all__ = ["metadata"]
