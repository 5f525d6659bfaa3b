"""The minimum loss per query and strict numbers: every stated loss, interval, confidence and bound
that is not a finite number inside its range is a ``QueryError`` (422) naming the range, never an
internal error, and no query is charged less than the minimum."""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from query_engine import Engine, EngineSettings, ProjectContext
from query_engine.errors import LossOutOfRange, LossTooSmall, QueryError
from query_engine.spec import parse_query

PURE = ProjectContext("pure", delta_available=True)
ZCDP = ProjectContext("zcdp", delta_available=True)
SETTINGS = EngineSettings()


@pytest.fixture(scope="module")
def engine(small_db: Path) -> Iterator[Engine]:
    with Engine.open(small_db, SETTINGS) as opened:
        yield opened


def _query(measure: str = "count_persons", **fields: Any) -> dict[str, Any]:
    return {"project": "p", "measure": measure, **fields}


# --- the minimum loss ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "context", "minimum"),
    [
        pytest.param({"epsilon": 0.009}, PURE, "0.01", id="epsilon"),
        pytest.param({"epsilon": 1e-300}, PURE, "0.01", id="epsilon_1e-300"),
        pytest.param({"epsilon": 5e-324}, PURE, "0.01", id="epsilon_subnormal"),
        pytest.param({"rho": 4.9e-5}, ZCDP, "5e-05", id="rho"),
        pytest.param({"rho": 1e-310}, ZCDP, "5e-05", id="rho_subnormal"),
    ],
)
def test_a_loss_below_the_minimum_is_refused_naming_it(
    engine: Engine, fields: dict[str, Any], context: ProjectContext, minimum: str
) -> None:
    with pytest.raises(LossTooSmall) as raised:
        engine.cost(parse_query(_query(**fields)), context)
    assert raised.value.code == "loss_too_small" and raised.value.status == 422
    assert f"minimum per query, {minimum}" in raised.value.message


def test_the_minimum_itself_is_accepted_and_charged(engine: Engine) -> None:
    cost = engine.cost(parse_query(_query(epsilon=0.01)), PURE)
    assert cost.loss.epsilon == pytest.approx(0.01, rel=1e-9)
    cost = engine.cost(parse_query(_query(rho=5e-5)), ZCDP)
    assert cost.loss.rho == pytest.approx(5e-5, rel=1e-9)


def test_the_minimum_is_a_setting(small_db: Path) -> None:
    with Engine.open(small_db, EngineSettings(min_epsilon=0.5, min_rho=0.1)) as strict:
        with pytest.raises(LossTooSmall, match="minimum per query, 0.5"):
            strict.cost(parse_query(_query(epsilon=0.4)), PURE)
        with pytest.raises(LossTooSmall, match="minimum per query, 0.1"):
            strict.cost(parse_query(_query(rho=0.09)), ZCDP)
        assert strict.cost(parse_query(_query(epsilon=0.5)), PURE).loss.epsilon == pytest.approx(0.5)


def test_a_minimum_above_the_maximum_is_refused() -> None:
    with pytest.raises(ValueError, match="min_epsilon"):
        EngineSettings(min_epsilon=11.0, max_epsilon=10.0)


@pytest.mark.parametrize("context", [PURE, ZCDP], ids=["pure", "zcdp"])
@pytest.mark.parametrize(
    "shape",
    [
        pytest.param({}, id="count_persons"),
        pytest.param({"measure": "sum", "register": "lpr", "column": "los_days"}, id="sum"),
    ],
)
def test_a_wide_target_ci_is_charged_the_minimum_with_a_narrower_interval(
    engine: Engine, context: ProjectContext, shape: dict[str, Any]
) -> None:
    floor_field = {"epsilon": 0.01} if context.mode == "pure" else {"rho": 5e-5}
    at_minimum = engine.cost(parse_query(_query(**{**shape, **floor_field})), context).loss
    for target in (1e12, 1e300):
        query = parse_query(_query(**{**shape, "target_ci": target}))
        assert engine.cost(query, context).loss == at_minimum
        preview = engine.preview(query, context)
        assert preview.expected_half_width is not None
        assert preview.expected_half_width <= target


@pytest.mark.parametrize("context", [PURE, ZCDP], ids=["pure", "zcdp"])
def test_a_target_ci_needing_more_than_the_minimum_is_charged_what_it_needs(
    engine: Engine, context: ProjectContext
) -> None:
    loss = engine.cost(parse_query(_query(target_ci=20)), context).loss
    minimum = SETTINGS.min_epsilon if context.mode == "pure" else SETTINGS.min_rho
    assert loss.value > minimum * 1.5


# --- strict numbers and ranges: a fuzz over values that break calibration ------------------------

NOT_NUMBERS = ["0.1", "1", True, False, [], {"value": 1}]
NUMBERS = [
    5e-324, 1e-310, 1e-300, 1e-20, -0.0, 0.0, -1.0, 1e-3, 5e-5, 0.01, 0.5, 1, 9.99, 10, 10.01, 1e6,
    1e300, 1.7e308, 2**63, 10**400, math.nan, math.inf, -math.inf,
]  # fmt: skip
SHAPES: dict[str, dict[str, Any]] = {
    "count_persons": {},
    "count_rows_by_chapter": {"measure": "count_rows", "register": "lpr", "group_by": ["lpr.icd10_chapter"]},
    "sum_income": {"measure": "sum", "register": "ind", "column": "disposable_income"},
    "mean_los": {"measure": "mean", "register": "lpr", "column": "los_days"},
    "median_los": {"measure": "quantile", "register": "lpr", "column": "los_days"},
    "open_domain": {"group_by": ["lpr.diagnosis_code"]},
}
_VALUE_SHAPES = ("sum_income", "mean_los", "median_los")


def _fuzz_cases() -> Iterator[Any]:
    for field in ("epsilon", "rho", "target_ci", "confidence", "bounds"):
        for value in [*NOT_NUMBERS, *NUMBERS]:
            shapes = _VALUE_SHAPES if field == "bounds" else SHAPES
            for shape in shapes:
                yield pytest.param(field, value, shape, id=f"{field}-{value!r:.12}-{shape}")


def _fuzzed(field: str, value: Any, shape: str) -> dict[str, Any]:
    data = _query(**SHAPES[shape])
    if field in ("epsilon", "rho", "target_ci"):
        data[field] = value
    else:
        data["epsilon"] = 1.0
        data[field] = [0, value] if field == "bounds" else value
    return data


class _Slow(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Slow


@pytest.mark.parametrize(("field", "value", "shape"), list(_fuzz_cases()))
def test_fuzzed_numbers_are_a_query_error_or_a_loss_in_range(
    engine: Engine, field: str, value: Any, shape: str
) -> None:
    for context in (PURE, ZCDP):
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(20)  # a calibration that never ends is a failure, not a hang of the suite
        try:
            query = parse_query(_fuzzed(field, value, shape))
            cost = engine.cost(query, context)
            engine.preview(query, context)
        except QueryError as exc:
            assert exc.status == 422
            if not isinstance(value, int | float) or isinstance(value, bool):
                assert exc.stage == "spec" and "number" in exc.message, exc.message
            if isinstance(exc, LossOutOfRange) and field in ("epsilon", "rho"):
                name = field
                low = getattr(SETTINGS, f"min_{name}")
                high = getattr(SETTINGS, f"max_{name}")
                assert f"[{low:g}, {high:g}]" in exc.message, exc.message
            continue
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        assert isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        loss = cost.loss
        if loss.epsilon is not None:
            assert SETTINGS.min_epsilon * (1 - 1e-9) <= loss.epsilon <= SETTINGS.max_epsilon
        else:
            assert loss.rho is not None
            assert SETTINGS.min_rho * (1 - 1e-9) <= loss.rho <= SETTINGS.max_rho
