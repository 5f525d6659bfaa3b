"""Loading the catalog from its YAML definition and the public classification CSV files.

``load_catalog`` reads ``catalog.yaml`` (settings and key sets), one YAML file per register and the
classifications, and resolves them into the frozen types of ``query_engine.catalog.types`` (which
check every privacy-relevant declaration as they are built).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import yaml

from query_engine.catalog.types import Catalog, CatalogError, KeySet, register_from_dict

log = logging.getLogger(__name__)

__all__ = ["load_catalog"]


def load_catalog(directory: Path | str) -> Catalog:
    """Load and resolve the YAML catalog in ``directory`` (the shipped one is
    ``datasets.packaged_catalog.packaged_catalog_dir()``; the engine does not know where it lives).

    A directory holding a resolved ``catalog.json`` (as written by ``sundstat generate``) is read
    from that file instead.
    """
    base = Path(directory)
    if (base / "catalog.json").is_file():
        return Catalog.loads((base / "catalog.json").read_text(encoding="utf-8"))
    settings_file = base / "catalog.yaml"
    if not settings_file.is_file():
        raise CatalogError(
            f"There is no catalog.yaml or catalog.json in {base}; "
            "give a catalog directory such as datasets/catalog."
        )
    settings = yaml.safe_load(settings_file.read_text(encoding="utf-8"))
    classifications = (base / settings.get("classifications", "../classifications")).resolve()
    keysets = {
        name: _resolve_keyset(name, spec, classifications) for name, spec in settings["keysets"].items()
    }
    registers = []
    for register_name in settings["registers"]:
        raw = yaml.safe_load((base / f"{register_name}.yaml").read_text(encoding="utf-8"))
        registers.append(register_from_dict(raw))
    chapters = (
        _read_csv(classifications / "icd10_chapters.csv")
        if (classifications / "icd10_chapters.csv").is_file()
        else []
    )
    return Catalog(
        registers=tuple(registers),
        keysets=keysets,
        reference_date=str(settings["reference_date"]),
        max_persons=int(settings["max_persons"]),
        person_register=settings.get("person_register", "cpr"),
        icd10_chapter_ranges=tuple((r["chapter"], r["first"], r["last"]) for r in chapters),
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _resolve_keyset(name: str, spec: dict[str, Any], classifications: Path) -> KeySet:
    """Build a key set from its declaration: explicit values, an integer range, bands or a file.

    Labels: explicit ``labels`` and ``labels_da`` maps for values; for a file, its ``label`` and
    ``label_da`` columns.
    """
    hierarchical = bool(spec.get("hierarchical", False))
    description = spec.get("description", "")
    labels_da: dict[str, str] | None = None
    if "values" in spec:
        values = tuple(spec["values"])
        labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
        if spec.get("labels_da") is not None:
            labels_da = {str(k): str(v) for k, v in spec["labels_da"].items()}
    elif "range" in spec:
        lo, hi = spec["range"]
        values = tuple(range(int(lo), int(hi) + 1))
        labels = {}
    elif "bands" in spec:
        width, top = int(spec["bands"]["width"]), int(spec["bands"]["open_from"])
        values = tuple(f"{a}-{a + width - 1}" for a in range(0, top, width)) + (f"{top}+",)
        labels = {}
    elif "file" in spec:
        rows = _read_csv(classifications / spec["file"])
        if "where" in spec:
            rows = [r for r in rows if all(r[k] == str(v) for k, v in spec["where"].items())]
        key, label, label_da = spec["key"], spec.get("label"), spec.get("label_da")
        columns = list(rows[0]) if rows else []
        for column in (key, label):
            if column is not None and rows and column not in columns:
                raise CatalogError(
                    f"The key set {name!r} names the column {column!r}, which {spec['file']} does not have; "
                    f"use one of its columns: {', '.join(columns)}."
                )
        values = tuple(int(r[key]) if spec.get("integer") else r[key] for r in rows)
        labels = {str(r[key]): r[label] for r in rows} if label else {}
        if label_da and rows and label_da not in columns:
            # Labels are not privacy facts: a classification file without Danish names (an older or
            # an operator's own) still loads, and the Danish view falls back to the English labels.
            log.warning(
                "The key set %r names the Danish label column %r, which %s does not have (columns: %s); "
                "it gets no Danish labels. Add the column, or fix the name in catalog.yaml.",
                name,
                label_da,
                spec["file"],
                ", ".join(columns),
            )
        elif label_da:
            labels_da = {str(r[key]): r[label_da] for r in rows}
    else:
        raise CatalogError(
            f"The key set {name!r} needs one of values, range, bands or file; declare one of them."
        )
    return KeySet(name, values, labels, hierarchical, description, labels_da)
