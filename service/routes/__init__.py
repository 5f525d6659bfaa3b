"""The HTTP routes, one module per area: public, queries, projects, applications, admin."""

from . import admin, applications, projects, public, queries

__all__ = ["admin", "applications", "projects", "public", "queries"]
