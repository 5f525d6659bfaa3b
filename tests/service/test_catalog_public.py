"""The public catalog JSON: key sets carry their Danish labels next to the English ones."""

from __future__ import annotations

import json

import pytest

from datasets.packaged_catalog import load_packaged_catalog
from query_engine.catalog import Catalog
from service.catalog_public import catalog_json


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_packaged_catalog()


def test_key_sets_have_labels_da_next_to_labels(catalog: Catalog) -> None:
    keysets = catalog_json(catalog)["keysets"]
    assert keysets["icd10"]["labels"]["E11"] == "Type 2 diabetes mellitus"
    assert keysets["icd10"]["labels_da"]["E11"] == "Type 2-diabetes"
    assert keysets["sex"]["labels_da"] == {"F": "Kvinde", "M": "Mand"}
    assert keysets["regions"]["labels_da"]["Hovedstaden"] == "Hovedstaden"
    assert keysets["isced"]["labels_da"]["8"] == "Ph.d.- og forskeruddannelser"
    assert all("labels_da" in ks for ks in keysets.values())
    assert keysets["atc5"]["labels_da"] == {}  # no Danish names declared: use labels


def test_a_catalog_without_danish_labels_is_served_with_empty_ones(catalog: Catalog) -> None:
    old = json.loads(catalog.dumps())
    for keyset in old["keysets"].values():
        keyset.pop("labels_da", None)
    keysets = catalog_json(Catalog.from_json(old))["keysets"]
    assert keysets["icd10"]["labels_da"] == {} and keysets["icd10"]["labels"]["E11"]
