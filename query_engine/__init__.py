"""query_engine: DP statistics over linked registers: spec, validate, plan, compile, execute, release."""

from .backends import Backend, DuckDBBackend
from .catalog import Catalog
from .compile import CompiledQuery, compile_plan
from .engine import Cost, Engine, ExactAggregates
from .errors import EngineError, PrivacyInvariantError, QueryError
from .plan import Plan, plan_query
from .settings import EngineSettings
from .spec import Condition, ProjectContext, Query, parse_query
from .validate import validate

__all__ = [
    "Backend",
    "Catalog",
    "CompiledQuery",
    "Condition",
    "Cost",
    "DuckDBBackend",
    "Engine",
    "EngineError",
    "EngineSettings",
    "ExactAggregates",
    "Plan",
    "PrivacyInvariantError",
    "ProjectContext",
    "Query",
    "QueryError",
    "compile_plan",
    "parse_query",
    "plan_query",
    "validate",
]
