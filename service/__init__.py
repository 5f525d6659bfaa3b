"""service: the HTTP API over the query engine and the budget ledger, its auth, settings and CLI.

Public API: ``service.app.create_app`` (FastAPI factory), ``service.settings.Settings``,
``service.client.Client`` (Python client), ``service.orchestration.Orchestrator``.
"""

API_VERSION = "0.1.0"

__all__ = ["API_VERSION"]
