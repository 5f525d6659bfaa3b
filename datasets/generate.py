"""The synthetic register generator behind ``sundstat generate``.

Writes one Parquet file per register with exactly the catalog's physical columns, plus the resolved
catalog as ``catalog.json``. Persons are generated in fixed-size chunks, each with its own random
stream spawned from the seed, and streamed to disk in fixed-size row groups, so memory stays bounded
and the same persons and seed give byte-identical files whatever the machine's memory or cores (with
the same numpy and pyarrow versions).

The model behind the data (diseases, drugs, causes of death, education, income) is described in
``datasets.synthetic.model``, and the effects built in by construction (``TRUTHS``) in
``datasets.synthetic.truths`` and docs/synthetic-data.md; the catalog's key sets and the reference
tables in ``datasets/reference`` are what it samples from (``datasets.synthetic.world``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from datasets.packaged_catalog import load_packaged_catalog
from datasets.synthetic.health import (
    dar_columns,
    lmdb_columns,
    lpr_columns,
    sample_death_causes,
    sample_diagnoses,
)
from datasets.synthetic.infarction import survive_infarctions
from datasets.synthetic.model import VOLUMES, Volume
from datasets.synthetic.output import ColumnData, KeyPermutation, RowGroupWriter, to_table
from datasets.synthetic.people import cpr_columns, ind_columns, person_years, sample_persons, udda_columns
from datasets.synthetic.world import World
from query_engine.catalog import Catalog

__all__ = ["CHUNK_PERSONS", "GenerationSummary", "generate"]

CHUNK_PERSONS = 100_000
# New streams go last, so that adding one leaves the others as they were.
_STREAMS = ("persons", "diagnoses", "dar", "lpr", "lmdb", "ind", "infarction")

Rows = tuple[npt.NDArray[np.int64], dict[str, ColumnData]]


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate`` wrote: persons, seed, directory, rows per register and the time taken."""

    persons: int
    seed: int
    out: Path
    rows: Mapping[str, int]
    seconds: float
    volume: str = "default"

    def describe(self) -> str:
        """A short human summary, one line per register."""
        width = max(len(name) for name in self.rows)
        lines = [
            f"Generated {self.persons:,} persons (seed {self.seed}, {self.volume} volume) into {self.out} "
            f"in {self.seconds:.1f} s:"
        ]
        lines += [f"  {name:<{width}}  {rows:>13,} rows  {name}.parquet" for name, rows in self.rows.items()]
        lines.append(f"  {'':<{width}}  {'':>13}       catalog.json")
        return "\n".join(lines)


def generate(
    persons: int, seed: int, out: Path, progress: bool = True, volume: str = "default"
) -> GenerationSummary:
    """Write ``persons`` synthetic persons' linked registers and the catalog into ``out``.

    ``volume`` names the event volume (``datasets.synthetic.model.VOLUMES``): ``default``, or
    ``national`` for the Danish registers' published yearly numbers of contacts and prescriptions.
    """
    if volume not in VOLUMES:
        raise ValueError(f"unknown volume {volume!r}; choose one of {', '.join(VOLUMES)}")
    if persons <= 0:
        raise ValueError(f"the number of persons must be positive, got {persons}")
    if seed < 0:
        raise ValueError(f"the seed must be a non-negative integer, got {seed}")
    started = time.perf_counter()
    catalog = load_packaged_catalog()
    world = World(catalog)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    n_chunks = math.ceil(persons / CHUNK_PERSONS)
    keys_stream, *chunk_streams = np.random.SeedSequence(seed).spawn(1 + n_chunks)
    key_rng = np.random.default_rng(keys_stream)
    person_ids = KeyPermutation(key_rng)
    row_keys = {name: KeyPermutation(key_rng) for name in catalog.register_names}
    contact_ids = KeyPermutation(key_rng)

    files = _PartialFiles(out, catalog)
    try:
        with tqdm(
            total=persons, unit=" persons", unit_scale=True, disable=not progress, file=sys.stderr
        ) as bar:
            for chunk, stream in enumerate(chunk_streams):
                first = chunk * CHUNK_PERSONS
                size = min(CHUNK_PERSONS, persons - first)
                tables = _chunk(world, stream, size, VOLUMES[volume])
                for name, (person, columns) in tables.items():
                    row = files.reserve(name, person.size)
                    columns["person_id"] = person_ids(first + person)
                    columns["row_key"] = row_keys[name](row)
                    if "contact_id" in columns:
                        columns["contact_id"] = contact_ids(row)
                files.write(tables)
                bar.update(size)
            files.commit()
    except BaseException:
        files.abort()
        raise
    return GenerationSummary(
        persons=persons,
        seed=seed,
        out=out,
        rows=dict(files.rows),
        seconds=time.perf_counter() - started,
        volume=volume,
    )


class _PartialFiles:
    """The register files of one run, written under temporary names and renamed together at the end.

    Writing happens on one background thread (Parquet encoding releases the GIL), overlapping with
    the generation of the next chunk; a single thread keeps each file's row order fixed.
    """

    def __init__(self, out: Path, catalog: Catalog) -> None:
        self._out = out
        self._catalog = catalog
        self._paths = {name: out / f".{name}.parquet.partial" for name in catalog.register_names}
        self._catalog_path = out / ".catalog.json.partial"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sundstat-generate-writer")
        self._pending: Future[None] | None = None
        self._writers: dict[str, RowGroupWriter] = {}
        self.rows = dict.fromkeys(catalog.register_names, 0)
        try:
            for name, path in self._paths.items():
                self._writers[name] = RowGroupWriter(path, catalog.register(name))
        except BaseException:
            self.abort()
            raise

    def reserve(self, name: str, count: int) -> npt.NDArray[np.int64]:
        """Row numbers (within the register's file) for the next ``count`` rows."""
        first = self.rows[name]
        self.rows[name] += count
        return np.arange(first, first + count, dtype=np.int64)

    def write(self, tables: dict[str, Rows]) -> None:
        """Queue one chunk's tables, after the previous chunk has been written."""
        if set(tables) != set(self._writers):
            raise AssertionError(
                f"bug: generated registers {sorted(tables)}, catalog has {sorted(self._writers)}"
            )
        self._wait()
        self._pending = self._pool.submit(self._write, tables)

    def commit(self) -> None:
        """Finish every file and give them their final names (the catalog last)."""
        self._wait()
        self._pool.shutdown()
        for writer in self._writers.values():
            writer.close()
        self._catalog_path.write_text(self._catalog.dumps(), encoding="utf-8")
        for name, path in self._paths.items():
            os.replace(path, self._out / f"{name}.parquet")
        os.replace(self._catalog_path, self._out / "catalog.json")

    def abort(self) -> None:
        """Remove every partial file; files of an earlier complete run stay as they were."""
        self._pool.shutdown(cancel_futures=True)
        for writer in self._writers.values():
            writer.abandon()
        for path in [*self._paths.values(), self._catalog_path]:
            path.unlink(missing_ok=True)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def _write(self, tables: dict[str, Rows]) -> None:
        for name, (_, columns) in tables.items():
            self._writers[name].write(to_table(self._catalog.register(name), columns))


def _chunk(world: World, stream: np.random.SeedSequence, size: int, volume: Volume) -> dict[str, Rows]:
    """All registers' rows for one chunk of persons (person index within the chunk, columns)."""
    rng = dict(zip(_STREAMS, (np.random.default_rng(s) for s in stream.spawn(len(_STREAMS))), strict=True))
    persons = sample_persons(rng["persons"], world, size)
    diagnoses = sample_diagnoses(rng["diagnoses"], world, persons)
    # Deaths after a first I21 are drawn anew, so everything below follows the final last day.
    persons, diagnoses, infarctions = survive_infarctions(rng["infarction"], world, persons, diagnoses)
    years = person_years(world, persons)
    cause = sample_death_causes(rng["dar"], world, persons, diagnoses, infarctions)
    return {
        "cpr": cpr_columns(world, persons),
        "lpr": lpr_columns(rng["lpr"], world, persons, years, diagnoses, cause, volume),
        "lmdb": lmdb_columns(rng["lmdb"], world, persons, years, diagnoses, infarctions, volume),
        "dar": dar_columns(world, persons, cause),
        "ind": ind_columns(rng["ind"], world, persons, years),
        "udda": udda_columns(world, persons, years),
    }
