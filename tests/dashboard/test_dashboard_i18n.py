"""Every UI string exists in English and Danish, with the same placeholders, and every key used exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dashboard import query_draft
from dashboard.i18n import LANGUAGES, placeholders, translate, translations
from dashboard.model_draft import MODEL_KINDS
from dashboard.views.transparency import CAP_LINE_FIELDS
from service.settings import EHDS_PURPOSES

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"

# Keys built at run time as prefix + value; each family lists every value the pages can produce.
FAMILIES = {
    "measure_": query_draft.MEASURES,
    "op_": ("in", "=", "!=", "prefix", "between", "<", "<=", ">", ">="),
    "loss_kind_": ("epsilon", "rho", "target_ci"),
    "loss_value_": ("epsilon", "rho", "target_ci"),
    "loss_help_": ("epsilon", "rho", "target_ci"),
    "role_": ("admin", "analyst", "anonymous"),
    "mode_": ("pure", "zcdp"),
    "purpose_": EHDS_PURPOSES,
    "grain_": ("person", "event", "person_year"),
    "status_": ("pending", "approved", "rejected"),
    "route_": ("auto", "admin"),
    "col_": ("column", "type", "description", "keyset", "bounds", "derived"),
    "projects_": ("pure", "zcdp"),
    "cap_line_": tuple(CAP_LINE_FIELDS),
    "analysis_intro_": ("rates", "survival", "models", "table1"),
    "model_kind_": MODEL_KINDS,
    "model_kind_help_": MODEL_KINDS,
    "model_estimate_": ("rate_ratio", "odds_ratio", "coefficient"),
    "table1_stat_": ("q1", "median", "q3"),
    "cohort_mode_": ("define", "stored"),
    "cohort_outcome_": ("death", "event"),
    "cohort_col_": ("age_band", "age_band_5", "period", "event"),
    "population_": ("none", "esp2013"),
    "unit_": ("days", "months", "years"),
    "adm_": (
        *("id", "status", "title", "route", "project", "granted_epsilon", "decided_at", "reason"),
        *("purpose", "mode", "registers", "epsilon_total", "epsilon_spent", "epsilon_remaining"),
        *("delta_total", "expires", "prefix", "role", "name", "created_at", "expires_at"),
        *("revoked_at", "active"),
    ),
}


def _literal_keys() -> set[str]:
    """String keys passed to ``t`` (``tr`` in ``dashboard.tables``), ``translate``, ``DraftError`` and the
    admin page's ``_call``."""
    keys: set[str] = set()
    for path in DASHBOARD.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None)
            args = {
                "t": node.args[:1],
                "tr": node.args[:1],
                "DraftError": node.args[:1],
                "translate": node.args[1:2],
                "_call": node.args[1:2],
            }
            for arg in args.get(str(name), []):
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    keys.add(arg.value)
    return keys


def _labeller_prefixes() -> set[str]:
    found = set()
    for path in DASHBOARD.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "labeller":
                arg = node.args[0]
                assert isinstance(arg, ast.Constant)
                found.add(str(arg.value))
    return found


def test_both_languages_have_the_same_keys() -> None:
    tables = translations()
    assert set(tables) == set(LANGUAGES)
    assert set(tables["en"]) == set(tables["da"]), set(tables["en"]) ^ set(tables["da"])


def test_placeholders_match_between_languages() -> None:
    tables = translations()
    bad = [key for key in tables["en"] if placeholders(tables["en"][key]) != placeholders(tables["da"][key])]
    assert not bad


def test_no_text_is_empty_and_danish_is_translated() -> None:
    tables = translations()
    assert all(text.strip() for table in tables.values() for text in table.values())
    same = [k for k in tables["en"] if tables["en"][k] == tables["da"][k]]
    assert len(same) < len(tables["en"]) / 5, same  # names and symbols may stay the same, prose may not


def test_every_key_used_in_the_code_exists() -> None:
    used = _literal_keys()
    assert len(used) > 150
    missing = sorted(used - set(translations()["en"]))
    assert not missing


@pytest.mark.parametrize("prefix", sorted(FAMILIES))
def test_every_key_of_a_family_exists(prefix: str) -> None:
    missing = [prefix + v for v in FAMILIES[prefix] if prefix + v not in translations()["en"]]
    assert not missing


def test_every_labeller_prefix_is_a_known_family() -> None:
    assert _labeller_prefixes() <= set(FAMILIES)


def test_translate_formats_and_falls_back() -> None:
    assert translate("da", "page_explore") == "Udforsk"
    assert translate("xx", "page_explore") == "Explore"
    assert translate("en", "no.such.key") == "no.such.key"
    assert translate("da", "code_hits", count=3, size=869) == "3 af 869 koder"


def test_every_string_is_used() -> None:
    families = {prefix + value for prefix, values in FAMILIES.items() for value in values}
    unused = sorted(set(translations()["en"]) - _literal_keys() - families)
    assert not unused
