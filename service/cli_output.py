"""How ``sundstat admin`` prints an answer: a readable table (lists) or key/value lines (one object) by
default, the API's JSON unchanged with ``--json`` (for scripts).

>>> print(as_text([{"id": "p1", "budget": {"epsilon_total": 1.0}, "active": True, "expires": None}]))
id  budget.epsilon_total  active  expires
--  --------------------  ------  -------
p1  1                     yes     -
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["as_json", "as_text"]

_MAX_CELL = 60


def as_json(value: Any) -> str:
    """The answer as the API gave it, as indented JSON (what ``--json`` prints)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _cell(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:.4g}" if 1e-3 <= abs(value) < 1e7 else f"{value:.3g}".replace("e-0", "e-")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    text = str(value).replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def _table(records: list[Mapping[str, Any]]) -> str:
    rows = [_flat(r) for r in records]
    columns = list(dict.fromkeys(c for row in rows for c in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def as_text(value: Any) -> str:
    """A list of objects as a table (nested fields as ``budget.epsilon_total``), one object as
    ``key: value`` lines, anything else as it is."""
    if isinstance(value, list):
        if not value:
            return "(none)"
        if all(isinstance(v, Mapping) for v in value):
            return _table(value)
        return "\n".join(_cell(v) for v in value)
    if isinstance(value, Mapping):
        flat = _flat(value)
        width = max((len(k) for k in flat), default=0)
        return "\n".join(f"{k.ljust(width)}  {_cell(v) if k != 'token' else v}" for k, v in flat.items())
    return _cell(value)
