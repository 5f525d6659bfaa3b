"""The HTTP routes, one module per area: public, queries, projects, applications, institutions, sign-in,
admin."""

from . import admin, applications, institutions, projects, public, queries, sign_in

__all__ = ["admin", "applications", "institutions", "projects", "public", "queries", "sign_in"]
