"""SQL for analysts: one SELECT read into the same ``Query`` as the JSON API (see ``statement``).

One module per step or clause: ``text`` (positions), ``parse`` (limits, nesting, lint, parse),
``statement`` (the entry and the whole statement), ``from_join``, ``select``, ``where``,
``group_by``, ``columns`` (column resolution), sharing a frozen ``scope.Scope``; ``errors`` holds
the error classes.
"""

from .parse import MAX_SQL_CHARS, MAX_SQL_CONDITIONS, MAX_SQL_DEPTH
from .statement import sql_to_query
from .text import DIALECT

__all__ = ["DIALECT", "MAX_SQL_CHARS", "MAX_SQL_CONDITIONS", "MAX_SQL_DEPTH", "sql_to_query"]
