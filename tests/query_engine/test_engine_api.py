"""The Engine: cost -> run contract, previews touch no data, releases carry every key."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from query_engine.catalog import Catalog
from query_engine.compile import CompiledQuery
from query_engine.engine import Cost, Engine
from query_engine.errors import LossOutOfRange, PrivacyInvariantError
from query_engine.mechanisms import PrivacyLoss
from query_engine.release_models import Preview, Release
from query_engine.settings import EngineSettings
from query_engine.spec import ProjectContext, parse_query
from tests.helpers.threads import in_threads

PURE = ProjectContext("pure")
ZCDP = ProjectContext("zcdp", delta_available=True)


class NoDataBackend:
    """A backend that must never be asked for data."""

    dialect = "duckdb"

    def execute(self, compiled: CompiledQuery) -> pa.Table:
        raise AssertionError("preview/cost touched the data")

    def read_catalog_json(self) -> str:
        raise AssertionError("unused")

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def engine(small_db: Path) -> Iterator[Engine]:
    e = Engine.open(small_db)
    yield e
    e.close()


COUNT = {"project": "p", "measure": "count_persons", "group_by": ["cpr.region", "cpr.sex"], "epsilon": 0.5}


def test_open_reads_the_catalog_from_the_database(engine: Engine, catalog: Catalog) -> None:
    assert engine.catalog.to_json() == catalog.to_json()


@pytest.mark.parametrize(
    "data, context",
    [
        pytest.param(COUNT, PURE, id="count"),
        pytest.param({**COUNT, "epsilon": None, "rho": 0.2}, ZCDP, id="count_rho"),
        pytest.param({**COUNT, "epsilon": None, "target_ci": 10}, PURE, id="count_target"),
        pytest.param(
            {
                "project": "p",
                "measure": "sum",
                "register": "lpr",
                "column": "los_days",
                "group_by": ["cpr.region"],
                "epsilon": 1,
            },
            PURE,
            id="sum",
        ),
        pytest.param(
            {"project": "p", "measure": "mean", "column": "cpr.age", "group_by": ["cpr.sex"], "rho": 0.5},
            ZCDP,
            id="mean",
        ),
        pytest.param(
            {
                "project": "p",
                "measure": "quantile",
                "register": "ind",
                "column": "disposable_income",
                "epsilon": 1,
            },
            PURE,
            id="quantile",
        ),
        pytest.param(
            {
                "project": "p",
                "measure": "count_rows",
                "register": "lpr",
                "group_by": ["lpr.diagnosis_code"],
                "rho": 0.5,
            },
            ZCDP,
            id="partition_selection",
        ),
    ],
)
def test_cost_preview_run(engine: Engine, data: dict[str, object], context: ProjectContext) -> None:
    query = parse_query({k: v for k, v in data.items() if v is not None})
    cost = engine.cost(query, context)
    preview = engine.preview(query, context)
    release = engine.run(query, context, cost=cost)
    assert isinstance(preview, Preview) and isinstance(release, Release)
    assert cost.query_hash == query.query_hash() and cost.canonical == query.canonical()
    charged = cost.loss.epsilon if cost.loss.epsilon is not None else cost.loss.rho
    assert (
        (preview.loss.epsilon or preview.loss.rho)
        == charged
        == (release.privacy.epsilon or release.privacy.rho)
    )
    assert release.columns[: len(query.group_by)] == list(query.group_by)
    assert release.small_cell_threshold == EngineSettings().small_cell_threshold
    assert release.model_dump(mode="json")["small_cell_threshold"] == 5
    assert set(preview.registers) == set(cost.registers)
    if query.group_by and query.group_by[0] != "lpr.diagnosis_code":
        assert len(release.rows) == preview.cells
        for row in release.rows:
            assert set(row) == set(release.columns)


def test_release_has_every_key_in_key_order(engine: Engine, catalog: Catalog) -> None:
    release = engine.run(parse_query(COUNT), PURE)
    keys = [(r["cpr.region"], r["cpr.sex"]) for r in release.rows]
    assert keys == [(r, s) for r in catalog.keyset("regions").values for s in ("F", "M")]


def test_small_cells_are_suppressed(small_db: Path) -> None:
    query = parse_query(
        {
            "project": "p",
            "measure": "count_persons",
            "where": [
                {"column": "lpr.icd10", "op": "=", "value": "Z00"},
                {"column": "cpr.sex", "op": "=", "value": "F"},
            ],
            "group_by": ["cpr.municipality"],
            "epsilon": 10,
        }
    )
    with Engine.open(small_db, EngineSettings(small_cell_threshold=1000)) as engine:
        release = engine.run(query, PURE)
    assert all(row["suppressed"] and row["value"] is None for row in release.rows)
    assert release.small_cell_threshold == 1000


def test_a_threshold_of_zero_is_stated_and_suppresses_nothing(small_db: Path) -> None:
    with Engine.open(small_db, EngineSettings(small_cell_threshold=0)) as engine:
        release = engine.run(parse_query(COUNT), PURE)
    assert release.small_cell_threshold == 0
    assert not any(row["suppressed"] for row in release.rows)


def test_preview_and_cost_touch_no_data(catalog: Catalog) -> None:
    engine = Engine(NoDataBackend(), catalog)
    query = parse_query(COUNT)
    assert engine.preview(query, PURE).cells == 10
    assert engine.cost(query, PURE).registers == ("cpr",)


def test_preview_and_cost_come_from_one_preparation(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(NoDataBackend(), catalog)
    derived: list[str] = []
    derive = engine._derive
    monkeypatch.setattr(engine, "_derive", lambda q, c: derived.append(q.query_hash()) or derive(q, c))
    query = parse_query(COUNT)
    preview, cost = engine.preview_and_cost(query, PURE)
    assert derived == [query.query_hash()]
    assert preview == engine.preview(query, PURE) and cost == engine.cost(query, PURE)
    assert preview.loss.epsilon == cost.loss.epsilon and derived == [query.query_hash()]


def test_run_refuses_a_cost_that_differs(engine: Engine) -> None:
    query = parse_query(COUNT)
    cost = engine.cost(query, PURE)
    cheaper = dataclasses.replace(cost, loss=PrivacyLoss(epsilon=cost.loss.value / 2))
    with pytest.raises(PrivacyInvariantError):
        engine.run(query, PURE, cost=cheaper)
    other = engine.cost(parse_query({**COUNT, "epsilon": 0.25}), PURE)
    with pytest.raises(PrivacyInvariantError):
        engine.run(
            query,
            PURE,
            cost=Cost(cost.loss, cost.mechanism, cost.registers, other.canonical, other.query_hash),
        )


def test_run_refuses_a_tampered_calibration(engine: Engine) -> None:
    query = parse_query({**COUNT, "epsilon": 0.7})
    cost = engine.cost(query, PURE)
    key = (query.canonical_json(), PURE)
    prepared = engine._prepared[key]
    tampered = dataclasses.replace(prepared.calibrations[0], scale=prepared.calibrations[0].scale / 2)
    engine._prepared[key] = dataclasses.replace(prepared, calibrations=(tampered,))
    try:
        with pytest.raises(PrivacyInvariantError):
            engine.run(query, PURE, cost=cost)
    finally:
        engine._prepared[key] = prepared


def test_loss_is_charged_before_data_and_within_limits(catalog: Catalog) -> None:
    engine = Engine(NoDataBackend(), catalog, EngineSettings(max_epsilon=0.01))
    with pytest.raises(LossOutOfRange) as info:
        engine.cost(parse_query({**COUNT, "epsilon": None, "target_ci": 1}), PURE)
    assert "target_ci" in info.value.message


def test_equal_queries_share_plans_and_sql(engine: Engine) -> None:
    a = parse_query({**COUNT, "where": [{"column": "cpr.sex", "op": "in", "value": ["M", "F"]}]})
    b = parse_query(
        {**COUNT, "where": [{"column": "cpr.sex", "op": "in", "value": ["F", "M"]}], "epsilon": 0.5}
    )
    assert engine.cost(a, PURE) == engine.cost(b, PURE)
    assert engine.compiled(a, PURE) is engine.compiled(b, PURE)


def test_concurrent_runs(engine: Engine) -> None:
    def work(_: int) -> None:
        for _ in range(5):
            engine.run(parse_query(COUNT), PURE)

    assert in_threads(work, 4) == []
