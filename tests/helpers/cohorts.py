"""Query JSON of the contract that many tests and the benchmarks declare: one place to build it.

``lpr_cohort`` builds the usual cohort (index: the first hospital contact with an ICD-10 prefix in the
entry window), ``metformin`` the usual exposure; ``FIRST_MI`` and ``E11_AFTER_CONTACT`` are the two
cohorts of the analysis accuracy tests and the analyses benchmark; ``INCOME_ON_AGE`` is the usual
linear regression (without its group columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ENTRY_2012_2020 = ("2012-01-01", "2020-12-31")
RATE_COLUMNS = [
    "events",
    "person_years",
    "rate",
    "ci_low",
    "ci_high",
    "noise_ci_low",
    "noise_ci_high",
    "sampling_ci_low",
    "sampling_ci_high",
    "suppressed",
]
"""The columns of a rate release after its group columns (the contract's, before ``ci_unbounded``)."""


def icd10(prefix: str) -> list[dict[str, Any]]:
    """A ``where`` list: the lpr rows whose ICD-10 code starts with ``prefix``."""
    return [{"column": "lpr.icd10", "op": "prefix", "value": prefix}]


def lpr_history(where: list[dict[str, Any]], lookback_days: int | None = None) -> dict[str, Any]:
    """An exclusion: an lpr contact matching ``where`` before the index (within ``lookback_days``)."""
    rule: dict[str, Any] = {"register": "lpr", "date": "admission_date", "where": where}
    if lookback_days is not None:
        rule["lookback_days"] = lookback_days
    return rule


def metformin(atc: str = "A10BA02", op: str = "prefix", lookback_days: int | None = 365) -> dict[str, Any]:
    """The exposure ``cohort.metformin``: an lmdb dispensing matching ``atc`` before the index."""
    exposure: dict[str, Any] = {
        "name": "metformin",
        "register": "lmdb",
        "date": "date",
        "where": [{"column": "lmdb.atc", "op": op, "value": atc}],
    }
    if lookback_days is not None:
        exposure["lookback_days"] = lookback_days
    return exposure


def lpr_cohort(
    where: str | list[dict[str, Any]],
    *,
    name: str | None = None,
    entry: Sequence[str] = ENTRY_2012_2020,
    follow_up_years: float = 5,
    **fields: Any,
) -> dict[str, Any]:
    """A cohort indexed at the first lpr contact matching ``where`` (an ICD-10 prefix or a where list)
    in ``entry``, followed ``follow_up_years``; ``fields`` adds exclude, outcome, exposures and so on."""
    cohort: dict[str, Any] = {"name": name} if name is not None else {}
    cohort["index"] = {
        "register": "lpr",
        "date": "admission_date",
        "where": icd10(where) if isinstance(where, str) else where,
        "entry": list(entry),
    }
    return {**cohort, **fields, "follow_up_years": follow_up_years}


FIRST_MI = lpr_cohort("I21", exclude=[lpr_history(icd10("I21"), lookback_days=1825)])
"""A first myocardial infarction 2012-2020 (none in the 5 years before), followed 5 years for death."""
E11_AFTER_CONTACT = lpr_cohort(
    [],
    entry=("2015-01-01", "2015-12-31"),
    exclude=[lpr_history(icd10("E11"))],
    outcome={"register": "lpr", "date": "admission_date", "where": icd10("E11")},
)
"""A hospital contact in 2015 without earlier type 2 diabetes, followed 5 years for a first E11."""

INCOME_ON_AGE: dict[str, Any] = {
    "measure": "linear_regression",
    "register": "ind",
    "column": "ind.disposable_income",
    "bounds": [0, 600000],
    "where": [{"column": "ind.year", "op": "=", "value": 2020}],
    "covariates": [{"column": "cpr.age", "bounds": [18, 100]}],
}
"""Disposable income in 2020 on age (a linear regression); add ``group_by`` for the categorical terms."""
