"""The service's own database, kept for existing imports: see :mod:`service.state`.

``ServiceStore`` is the SQLite state store (``service.sqlite`` in the state directory); code that works
with either store annotates :class:`service.state.StateStore`.
"""

from __future__ import annotations

from .state import StateStore
from .state.sqlite import SqliteStateStore as ServiceStore

__all__ = ["ServiceStore", "StateStore"]
