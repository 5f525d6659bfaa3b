"""The catalog: the packaged definition loads, is complete, and refuses incomplete declarations."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from datasets.packaged_catalog import load_packaged_catalog
from query_engine.catalog import Bounds, Catalog, CatalogError, KeySet, load_catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_packaged_catalog()


def test_six_registers_with_both_languages(catalog: Catalog) -> None:
    assert catalog.register_names == ("cpr", "lpr", "lmdb", "dar", "ind", "udda")
    for reg in catalog.registers:
        assert reg.title.en and reg.title.da and reg.description.en and reg.description.da
        assert reg.controller
        assert reg.coverage[0] <= reg.coverage[1]
        for col in reg.columns:
            assert col.description.en and col.description.da, f"{reg.name}.{col.name}"


def test_every_queryable_column_declares_keys_or_bounds(catalog: Catalog) -> None:
    for reg in catalog.registers:
        for col in reg.columns:
            if col.queryable:
                assert col.keyset or col.bounds or col.open_domain, f"{reg.name}.{col.name}"


def test_public_classifications_are_complete(catalog: Catalog) -> None:
    assert len(catalog.keyset("regions").values) == 5
    assert len(catalog.keyset("municipalities").values) == 98
    assert len(catalog.keyset("icd10").values) >= 400
    assert len(catalog.keyset("icd10_chapters").values) == 22
    assert len(catalog.keyset("atc5").values) >= 200
    for level, name in enumerate(("atc1", "atc2", "atc3", "atc4"), start=1):
        assert catalog.keyset(name).values, f"ATC level {level}"
    assert catalog.keyset("age_band_10").values[-1] == "90+"
    assert catalog.keyset("age_band_5").values[:2] == ("0-4", "5-9")
    assert catalog.keyset("isced").values == tuple(range(9))
    assert "E11" in catalog.keyset("icd10") and "A10BA02" in catalog.keyset("atc5")
    assert catalog.keyset("icd10").labels["E11"].lower().startswith("type 2 diabetes")


def test_every_icd10_code_falls_in_its_chapter_range(catalog: Catalog) -> None:
    ranges = catalog.icd10_chapter_ranges
    for code in catalog.keyset("icd10").values:
        chapters = [ch for ch, first, last in ranges if first <= str(code) <= last]
        assert len(chapters) == 1, code


def test_atc_levels_are_prefixes_of_level_five(catalog: Catalog) -> None:
    for name, length in (("atc1", 1), ("atc2", 3), ("atc3", 4), ("atc4", 5)):
        keys = set(catalog.keyset(name).values)
        assert all(len(str(k)) == length for k in keys)
        assert all(str(code)[:length] in keys for code in catalog.keyset("atc5").values)


def test_json_round_trip_is_exact(catalog: Catalog) -> None:
    again = Catalog.loads(catalog.dumps())
    assert again.dumps() == catalog.dumps()
    assert json.loads(catalog.dumps())["registers"][0]["name"] == "cpr"


def test_column_resolution(catalog: Catalog) -> None:
    reg, col = catalog.column("lpr.icd10")
    assert reg.name == "lpr" and col.keyset == "icd10"
    with pytest.raises(KeyError):
        catalog.column("lpr.nope")


def _replace_column(catalog: Catalog, register: str, column: str, **changes: object) -> Catalog:
    regs = []
    for reg in catalog.registers:
        if reg.name == register:
            cols = tuple(dataclasses.replace(c, **changes) if c.name == column else c for c in reg.columns)
            reg = dataclasses.replace(reg, columns=cols)
        regs.append(reg)
    return Catalog(
        registers=tuple(regs),
        keysets=catalog.keysets,
        reference_date=catalog.reference_date,
        max_persons=catalog.max_persons,
        icd10_chapter_ranges=catalog.icd10_chapter_ranges,
    )


@pytest.mark.parametrize(
    ("register", "column", "changes", "message"),
    [
        pytest.param(
            "lpr", "los_days", {"bounds": None}, "needs a public key set", id="numeric_without_bounds"
        ),
        pytest.param("lpr", "icd10", {"keyset": "nope"}, "unknown key set", id="unknown_keyset"),
        pytest.param("lpr", "los_days", {"null_value": None}, "null_value", id="nullable_without_constant"),
        pytest.param(
            "lpr",
            "icd10",
            {"keyset": None, "open_domain": True, "type": "integer"},
            "open_domain",
            id="open_domain_not_string",
        ),
    ],
)
def test_incomplete_declarations_are_refused(
    catalog: Catalog, register: str, column: str, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        _replace_column(catalog, register, column, **changes)


def test_person_grain_register_has_one_row_per_person(catalog: Catalog) -> None:
    regs = tuple(
        dataclasses.replace(r, rows_per_person=(1, 5)) if r.name == "cpr" else r for r in catalog.registers
    )
    with pytest.raises(CatalogError, match="exactly one row per person"):
        Catalog(
            registers=regs,
            keysets=catalog.keysets,
            reference_date=catalog.reference_date,
            max_persons=catalog.max_persons,
            icd10_chapter_ranges=catalog.icd10_chapter_ranges,
        )


def test_bounds_and_keysets_check_themselves() -> None:
    with pytest.raises(CatalogError):
        Bounds(lo=5, hi=1)
    with pytest.raises(CatalogError):
        Bounds(lo=0, hi=1, resolution=0)
    with pytest.raises(CatalogError):
        KeySet("dup", ("a", "a"))
    assert Bounds(lo=-3, hi=2).magnitude == 3


# --- Danish labels --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyset", "value", "english", "danish"),
    [
        pytest.param("icd10", "E11", "Type 2 diabetes mellitus", "Type 2-diabetes", id="icd10"),
        pytest.param("icd10_chapters", "II", "Neoplasms", "Svulster", id="icd10_chapters"),
        pytest.param("isced", "1", "Primary education", "Grundskole 1.-6. klasse", id="isced"),
        pytest.param("regions", "Hovedstaden", "Capital Region of Denmark", "Hovedstaden", id="regions"),
        pytest.param("municipalities", "101", "København", "København", id="municipalities"),
        pytest.param("sex", "F", "Female", "Kvinde", id="sex"),
        pytest.param("contact_types", "inpatient", "Inpatient", "Indlæggelse", id="contact_types"),
        pytest.param("vital_status", "dead", "Dead", "Død", id="vital_status"),
    ],
)
def test_key_sets_have_danish_labels(
    catalog: Catalog, keyset: str, value: str, english: str, danish: str
) -> None:
    ks = catalog.keyset(keyset)
    assert ks.labels[value] == english
    assert ks.labels_da is not None and ks.labels_da[value] == danish
    assert set(ks.labels_da) == {str(v) for v in ks.values}


def test_key_sets_without_danish_labels_have_none(catalog: Catalog) -> None:
    assert catalog.keyset("atc5").labels_da is None
    assert catalog.keyset("age_band_10").labels_da is None
    assert "labels_da" not in catalog.keyset("atc5").to_json()


def test_danish_labels_round_trip_through_json(catalog: Catalog) -> None:
    again = Catalog.loads(catalog.dumps())
    assert again.keyset("icd10").labels_da == catalog.keyset("icd10").labels_da
    assert again.keyset("sex").labels_da == {"F": "Kvinde", "M": "Mand"}
    assert again.keyset("atc5").labels_da is None


def test_a_catalog_stored_before_danish_labels_still_loads(catalog: Catalog) -> None:
    """Databases built before ``labels_da`` existed hold key sets without it."""
    old = json.loads(catalog.dumps())
    for keyset in old["keysets"].values():
        keyset.pop("labels_da", None)
    loaded = Catalog.loads(json.dumps(old))
    assert all(ks.labels_da is None for ks in loaded.keysets.values())
    assert loaded.keyset("icd10").labels == catalog.keyset("icd10").labels
    assert json.loads(loaded.dumps()) == old  # dumps as it was stored


def test_danish_labels_must_label_values_of_the_key_set() -> None:
    with pytest.raises(CatalogError, match="not among its values"):
        KeySet("sex", ("F", "M"), {"F": "Female"}, labels_da={"F": "Kvinde", "X": "?"})


def test_a_missing_danish_label_column_is_named_and_gives_no_danish_labels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Labels are no privacy fact: classification files without Danish names still load, with a warning."""
    from tests.query_engine.engine_fixtures import build_fixture_catalog

    build_fixture_catalog(tmp_path)
    settings = tmp_path / "catalog" / "catalog.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8").replace("label_da: title_da", "label_da: title_dk", 1),
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="query_engine.catalog"):
        loaded = load_catalog(tmp_path / "catalog")
    assert loaded.keyset("icd10").labels_da is None and loaded.keyset("icd10").labels["E11"]
    assert "'title_dk'" in caplog.text and "columns: code, title_en, title_da" in caplog.text
    assert loaded.keyset("icd10_chapters").labels_da is not None


def test_a_missing_key_or_label_column_is_refused(tmp_path: Path) -> None:
    from tests.query_engine.engine_fixtures import build_fixture_catalog

    build_fixture_catalog(tmp_path)
    settings = tmp_path / "catalog" / "catalog.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8").replace("label: title_en", "label: title_english", 1),
        encoding="utf-8",
    )
    with pytest.raises(
        CatalogError, match="'title_english'.*use one of its columns: code, title_en, title_da"
    ):
        load_catalog(tmp_path / "catalog")
