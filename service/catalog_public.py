"""The public catalog: registers, columns, key sets, controllers and coverage, as JSON and DCAT-AP.

Everything here comes from the declared catalog (the trust boundary), never from the data, so it can
be published without authentication. The DCAT form follows DCAT-AP 3 with HealthDCAT-AP properties
where they apply (coding systems as Wikidata properties, population coverage, purpose of access).
"""

from __future__ import annotations

from typing import Any

from query_engine.catalog import Catalog, Register

__all__ = ["catalog_dcat", "catalog_json"]

_CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "adms": "http://www.w3.org/ns/adms#",
    "healthdcatap": "http://healthdataportal.eu/ns/health#",
    "dpv": "https://w3id.org/dpv#",
    "sundstat": "https://sundstat.example/ns#",
}
_EU = "http://publications.europa.eu/resource/authority"
# Wikidata properties naming the coding systems, as HealthDCAT-AP recommends.
_CODING_SYSTEMS = {
    "icd10": "https://www.wikidata.org/entity/P494",
    "icd10_chapters": "https://www.wikidata.org/entity/P494",
    "atc5": "https://www.wikidata.org/entity/P267",
    "atc1": "https://www.wikidata.org/entity/P267",
    "atc2": "https://www.wikidata.org/entity/P267",
    "atc3": "https://www.wikidata.org/entity/P267",
    "atc4": "https://www.wikidata.org/entity/P267",
}


def catalog_json(catalog: Catalog) -> dict[str, Any]:
    """Every register with its columns, plus every key set with its values and labels (English and Danish)."""
    registers = []
    for reg in catalog.registers:
        registers.append(
            {
                **reg.header_json(),
                "columns": [
                    {
                        "name": col.name,
                        "qualified": f"{reg.name}.{col.name}",
                        "type": col.type,
                        "description": col.description.to_json(),
                        "queryable": col.queryable,
                        "role": col.role,
                        "derived": col.is_derived,
                        "keyset": col.keyset,
                        "bounds": col.bounds.to_json() if col.bounds else None,
                        "nullable": col.nullable,
                        "open_domain": col.open_domain,
                    }
                    for col in reg.columns
                ],
            }
        )
    keysets = {
        name: {
            "name": ks.name,
            "description": ks.description,
            "size": len(ks.values),
            "hierarchical": ks.hierarchical,
            "values": list(ks.values),
            "labels": ks.labels,
            # Danish labels where the catalog declares them; {} otherwise (then use ``labels``).
            "labels_da": ks.labels_da or {},
        }
        for name, ks in sorted(catalog.keysets.items())
    }
    return {
        "reference_date": catalog.reference_date,
        "person_register": catalog.person_register,
        "privacy_unit": "person (all of a person's rows in all registers, linked on person_id)",
        "registers": registers,
        "keysets": keysets,
    }


def _text(en: str, da: str) -> list[dict[str, str]]:
    return [{"@value": en, "@language": "en"}, {"@value": da, "@language": "da"}]


def _dataset(reg: Register, catalog: Catalog, base_url: str) -> dict[str, Any]:
    coding = sorted({_CODING_SYSTEMS[c.keyset] for c in reg.columns if c.keyset in _CODING_SYSTEMS})
    return {
        "@id": f"{base_url}/v1/catalog#{reg.name}",
        "@type": "dcat:Dataset",
        "dct:identifier": reg.name,
        "dct:title": _text(reg.title.en, reg.title.da),
        "dct:description": _text(reg.description.en, reg.description.da),
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": reg.controller},
        "dct:temporal": {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": {"@value": f"{reg.coverage[0]}-01-01", "@type": "xsd:date"},
            "dcat:endDate": {"@value": f"{reg.coverage[1]}-12-31", "@type": "xsd:date"},
        },
        "dct:spatial": {"@id": f"{_EU}/country/DNK"},
        "dct:language": [{"@id": f"{_EU}/language/DAN"}, {"@id": f"{_EU}/language/ENG"}],
        "dcat:theme": [{"@id": f"{_EU}/data-theme/HEAL"}, {"@id": f"{_EU}/data-theme/SOCI"}],
        "dcat:keyword": [c.name for c in reg.columns if c.queryable],
        "dct:accessRights": {"@id": f"{_EU}/access-right/RESTRICTED"},
        "dct:accrualPeriodicity": {"@id": f"{_EU}/frequency/ANNUAL"},
        "healthdcatap:populationCoverage": _text(
            "Every person resident in Denmark in the coverage period, linked on a pseudonymous person key.",
            "Alle personer med bopæl i Danmark i perioden, koblet på en pseudonym personnøgle.",
        ),
        "healthdcatap:hasCodingSystem": [{"@id": uri} for uri in coding],
        "healthdcatap:analytics": {"@id": f"{base_url}/v1/transparency"},
        "dpv:hasPurpose": [{"@id": "https://w3id.org/dpv#ResearchAndDevelopment"}],
        "sundstat:grain": reg.grain,
        "sundstat:rowsPerPerson": reg.rows_per_person[1],
        "sundstat:groupsPerPerson": reg.groups_per_person[1],
        "sundstat:personRegister": reg.name == catalog.person_register,
        "dcat:distribution": [
            {
                "@type": "dcat:Distribution",
                "dct:title": _text(
                    "Differentially private aggregate statistics (query API)",
                    "Differentielt private aggregerede statistikker (forespørgsels-API)",
                ),
                "dct:format": {"@id": f"{_EU}/file-type/JSON"},
                "dcat:accessURL": {"@id": f"{base_url}/v1/queries"},
                "dcat:accessService": {
                    "@type": "dcat:DataService",
                    "dcat:endpointURL": {"@id": f"{base_url}/v1"},
                    "dcat:endpointDescription": {"@id": f"{base_url}/openapi.json"},
                },
                "dct:rights": _text(
                    "Only differentially private aggregates are released; no microdata leave the service.",
                    "Kun differentielt private aggregater udleveres; ingen mikrodata forlader tjenesten.",
                ),
            }
        ],
    }


def catalog_dcat(catalog: Catalog, base_url: str) -> dict[str, Any]:
    """The catalog as DCAT-AP / HealthDCAT-AP JSON-LD: a ``dcat:Catalog`` with one dataset per register."""
    base = base_url.rstrip("/")
    controllers = sorted({r.controller for r in catalog.registers})
    return {
        "@context": _CONTEXT,
        "@id": f"{base}/v1/catalog/dcat",
        "@type": "dcat:Catalog",
        "dct:title": _text(
            "sundstat: linked Danish health registers", "sundstat: koblede danske sundhedsregistre"
        ),
        "dct:description": _text(
            "Registers available for differentially private statistics. Each dataset is a register; "
            "answers are aggregate statistics with calibrated noise.",
            "Registre, der kan bruges til differentielt private statistikker. Hvert datasæt er et "
            "register; svarene er aggregerede statistikker med kalibreret støj.",
        ),
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": "sundstat"},
        "dct:language": [{"@id": f"{_EU}/language/DAN"}, {"@id": f"{_EU}/language/ENG"}],
        "dct:spatial": {"@id": f"{_EU}/country/DNK"},
        "dcat:themeTaxonomy": {"@id": f"{_EU}/data-theme"},
        "sundstat:controllers": controllers,
        "dcat:dataset": [_dataset(reg, catalog, base) for reg in catalog.registers],
    }
