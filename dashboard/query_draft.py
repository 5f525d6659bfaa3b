"""The query being drafted: the JSON query (``QueryDraft``) and the SQL one (``SqlDraft``), their
checks, the position of SQL errors, idempotency keys, and the JSON, Python and SQL snippets that
repeat a query outside the dashboard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import pprint
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from dashboard.catalog_lookup import Json

__all__ = [
    "CONFIDENCE_LEVELS",
    "MEASURES",
    "Condition",
    "DraftError",
    "LossKind",
    "check_loss",
    "QueryDraft",
    "SqlDraft",
    "error_position",
    "idempotency_key",
    "loss_kinds",
    "python_snippet",
    "query_fingerprint",
    "query_json",
    "sql_excerpt",
    "sql_snippet",
]


Measure = Literal["count_persons", "count_rows", "sum", "mean", "quantile"]
LossKind = Literal["epsilon", "rho", "target_ci"]
CONFIDENCE_LEVELS = (0.8, 0.9, 0.95, 0.99)
MEASURES: tuple[Measure, ...] = ("count_persons", "count_rows", "sum", "mean", "quantile")
_VALUE_MEASURES = ("sum", "mean", "quantile")


class DraftError(ValueError):
    """The draft cannot become a query yet; ``key`` names the UI message, ``values`` fill it in."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class Condition:
    """One filter of the cohort: column, operator and value(s), as in the query JSON."""

    column: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op in ("in", "between"):
            if not isinstance(self.value, list | tuple) or not self.value:
                raise DraftError("error_condition_values", column=self.column)
            if self.op == "between" and len(self.value) != 2:
                raise DraftError("error_condition_between", column=self.column)
        elif self.value is None or self.value == "" or isinstance(self.value, list | tuple):
            raise DraftError("error_condition_value", column=self.column)

    def to_json(self) -> Json:
        """The condition as the query JSON has it (dates as ISO strings)."""
        return {"column": self.column, "op": self.op, "value": _jsonable(self.value)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_bounding(max_groups: int | None, max_rows: int | None) -> None:
    for name, value in (("max_groups", max_groups), ("max_rows", max_rows)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DraftError("error_bounding", name=name)


def check_loss(loss: Any, kind: str) -> None:
    """Raise ``DraftError`` unless ``loss`` is a positive finite number."""
    if not (isinstance(loss, int | float) and math.isfinite(loss) and loss > 0):
        raise DraftError("error_loss", kind=kind)


def loss_kinds(mode: str) -> list[LossKind]:
    """How the loss can be stated: epsilon always, rho in zCDP projects, or accuracy-first."""
    return ["epsilon", "rho", "target_ci"] if mode == "zcdp" else ["epsilon", "target_ci"]


@dataclass(frozen=True, kw_only=True)
class _LossAndBounds:
    """What both drafts send besides their query: the loss (one of epsilon, rho or target_ci), the
    confidence level and the contribution bounds that are set."""

    loss_kind: LossKind = "epsilon"
    loss: float = 0.1
    confidence: float = 0.95
    max_groups: int | None = None
    max_rows: int | None = None

    def _check_loss_and_bounds(self) -> None:
        check_loss(self.loss, self.loss_kind)
        _check_bounding(self.max_groups, self.max_rows)

    def _loss_and_bounds(self) -> Json:
        body: Json = {self.loss_kind: self.loss, "confidence": self.confidence}
        for name, value in (("max_groups", self.max_groups), ("max_rows", self.max_rows)):
            if value is not None:
                body[name] = value
        return body


@dataclass(frozen=True)
class QueryDraft(_LossAndBounds):
    """What the query builder holds; ``to_query()`` is the request body of preview and run."""

    project: str
    measure: Measure = "count_persons"
    register: str = "cpr"
    column: str | None = None
    bounds: tuple[float, float] | None = None
    quantile: float | None = None
    where: tuple[Condition, ...] = ()
    group_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise DraftError("error_measure", measure=self.measure)
        if self.measure in _VALUE_MEASURES and not self.column:
            raise DraftError("error_need_column", measure=self.measure)
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise DraftError("error_bounds", lo=self.bounds[0], hi=self.bounds[1])
        if len(set(self.group_by)) != len(self.group_by):
            raise DraftError("error_group_by_repeat")
        self._check_loss_and_bounds()

    def to_query(self) -> Json:
        """The query JSON: one of epsilon, rho or target_ci; column, bounds and quantile only where used;
        ``max_groups``/``max_rows`` only when set."""
        value_measure = self.measure in _VALUE_MEASURES
        return {
            "project": self.project,
            "measure": self.measure,
            "register": "cpr" if self.measure == "count_persons" else self.register,
            "column": self.column if value_measure else None,
            "bounds": list(self.bounds) if value_measure and self.bounds is not None else None,
            "quantile": self.quantile if self.measure == "quantile" else None,
            "where": [c.to_json() for c in self.where],
            "group_by": list(self.group_by),
            **self._loss_and_bounds(),
        }


@dataclass(frozen=True)
class SqlDraft(_LossAndBounds):
    """What the SQL tab holds; ``to_body()`` is the request body of ``/v1/sql/preview`` and ``/v1/sql``."""

    project: str
    sql: str

    def __post_init__(self) -> None:
        if not self.sql.strip():
            raise DraftError("error_sql_empty")
        self._check_loss_and_bounds()

    def to_body(self) -> Json:
        """The body: project, the SQL text (trailing blanks dropped, so positions stay those of the
        text as typed), one of epsilon, rho or target_ci, confidence, and the bounds that are set."""
        return {"project": self.project, "sql": self.sql.rstrip(), **self._loss_and_bounds()}


def error_position(body: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(line, column)`` of an SQL error body's ``position``, if it has one."""
    position = body.get("position")
    if not isinstance(position, Mapping):
        return None
    line, column = position.get("line"), position.get("column")
    if isinstance(line, int) and isinstance(column, int) and line >= 1 and column >= 1:
        return line, column
    return None


def sql_excerpt(sql: str, line: int, column: int) -> str:
    r"""The line of ``sql`` an error points at, numbered, with a caret under the column (1-based).

    >>> print(sql_excerpt("SELECT a\nFROM cpr WHERE a = 1 OR b = 2", 2, 22))
    2 | FROM cpr WHERE a = 1 OR b = 2
      |                      ^
    """
    lines = sql.split("\n")  # the service counts lines by newline characters
    if not 1 <= line <= len(lines):
        return ""
    text = lines[line - 1].rstrip("\r")
    number = f"{line} | "
    pad = "".join("\t" if ch == "\t" else " " for ch in text[: column - 1])
    return f"{number}{text}\n{' ' * (len(number) - 2)}| {pad}^"


def query_fingerprint(query: Mapping[str, Any]) -> str:
    """A stable hash of a query body (key order does not matter)."""
    text = json.dumps(query, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def idempotency_key(
    keys: MutableMapping[str, str],
    query: Mapping[str, Any],
    new: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> str:
    """The idempotency key of ``query``: made once per distinct query and kept in ``keys``.

    A rerun, a double click or a retry of the same query sends the same key, so the service returns
    the stored release instead of spending again.
    """
    fingerprint = query_fingerprint(query)
    if fingerprint not in keys:
        keys[fingerprint] = new()
    return keys[fingerprint]


def query_json(query: Mapping[str, Any]) -> str:
    """The query as pretty JSON text, as sent to the API."""
    return json.dumps(query, indent=2, ensure_ascii=False)


def python_snippet(query: Mapping[str, Any], api_url: str) -> str:
    """Python code that previews and runs the same query with ``service.client.Client``.

    The token is read from the ``SUNDSTAT_TOKEN`` environment variable, never written into the code.
    """
    literal = pprint.pformat(dict(query), sort_dicts=False, width=100)
    return (
        "import os\n"
        "import uuid\n\n"
        "from service.client import Client\n\n"
        f"query = {literal}\n\n"
        "# Keep the key: a retry with the same key returns the stored release instead of spending again.\n"
        "key = str(uuid.uuid4())\n"
        f'with Client("{api_url}", token=os.environ["SUNDSTAT_TOKEN"]) as api:\n'
        "    preview = api.preview(query)  # free: cost and expected accuracy\n"
        "    release = api.run(query, idempotency_key=key)  # spends budget\n\n"
        'for row in release["rows"]:\n'
        "    print(row)\n"
    )


def _sql_literal(sql: str) -> str:
    """The SQL text as a Python literal: a triple-quoted string where that is exact, else ``repr``."""
    if '"""' in sql or "\\" in sql or "\r" in sql or sql.endswith('"'):
        return repr(sql)
    return f'"""{sql}"""'


def sql_snippet(body: Mapping[str, Any], api_url: str) -> str:
    """Python code that previews and runs the same SQL query with ``Client.sql_preview`` and ``Client.sql``.

    The token is read from the ``SUNDSTAT_TOKEN`` environment variable, never written into the code.
    """
    project = body.get("project")
    options = "".join(f", {k}={v!r}" for k, v in body.items() if k not in ("project", "sql"))
    return (
        "import os\n"
        "import uuid\n\n"
        "from service.client import Client\n\n"
        f"sql = {_sql_literal(str(body.get('sql', '')))}\n\n"
        "# Keep the key: a retry with the same key returns the stored release instead of spending again.\n"
        "key = str(uuid.uuid4())\n"
        f'with Client("{api_url}", token=os.environ["SUNDSTAT_TOKEN"]) as api:\n'
        f"    preview = api.sql_preview(sql, project={project!r}{options})  # free: cost and accuracy\n"
        f"    release = api.sql(sql, project={project!r}, idempotency_key=key{options})  # spends budget\n\n"
        'for row in release["rows"]:\n'
        "    print(row)\n"
    )
