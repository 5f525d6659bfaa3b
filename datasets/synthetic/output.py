"""Column containers, unique random keys and the deterministic Parquet writer of the generator."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from query_engine.catalog import Register

ARROW_TYPES = {"integer": pa.int64(), "string": pa.string(), "float": pa.float64(), "date": pa.date32()}

# Fixed rather than adaptive so that the bytes on disk depend only on the data.
ROW_GROUP_ROWS = 1_000_000
_ZSTD_LEVEL = 1
_MASK62 = np.uint64((1 << 62) - 1)


@dataclass(frozen=True)
class Coded:
    """A string column as indices into a vocabulary (turned into Arrow strings at the end)."""

    codes: npt.NDArray[np.integer]
    vocabulary: pa.Array


@dataclass(frozen=True)
class Masked:
    """A nullable column: values plus a validity mask (False means NULL)."""

    values: npt.NDArray[np.generic]
    valid: npt.NDArray[np.bool_]


ColumnData = npt.NDArray[np.generic] | Coded | Masked


class KeyPermutation:
    """A keyed bijection of [0, 2^62): unique, random-looking keys without collision checks.

    Multiplications by odd constants and xor-shifts are each invertible modulo 2^62 and map 0 to 0,
    so index ``i`` maps to a distinct key in [1, 2^62) via ``i + 1``.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._multipliers = [np.uint64(m) | np.uint64(1) for m in rng.integers(1, 1 << 62, size=3)]

    def __call__(self, index: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        x = index.astype(np.uint64) + np.uint64(1)
        for multiplier, shift in zip(self._multipliers, (31, 29, 32), strict=True):
            x *= multiplier
            x &= _MASK62
            x ^= x >> np.uint64(shift)
        return x.astype(np.int64)


def arrow_schema(register: Register) -> pa.Schema:
    """The Arrow schema of a register file: its physical columns in catalog order."""
    return pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in register.physical_columns]
    )


def to_arrow(data: ColumnData, type_: pa.DataType) -> pa.Array:
    """Convert one generated column to an Arrow array of the catalog's type."""
    if isinstance(data, Coded):
        return data.vocabulary.take(pa.array(data.codes))
    if isinstance(data, Masked):
        values, mask = data.values, ~data.valid
    else:
        values, mask = data, None
    if pa.types.is_date32(type_):
        return pa.array(values.astype(np.int32), mask=mask).view(pa.date32())
    return pa.array(values, type=type_, mask=mask)


def to_table(register: Register, columns: dict[str, ColumnData]) -> pa.Table:
    """Assemble a register table; the generated columns must be exactly the catalog's."""
    schema = arrow_schema(register)
    if set(columns) != set(schema.names):
        raise AssertionError(
            f"bug: generator produced columns {sorted(columns)} for {register.name}, "
            f"the catalog declares {schema.names}"
        )
    arrays = [to_arrow(columns[f.name], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _parquet_options(register: Register) -> dict[str, object]:
    """Writer options, all pinned. Random keys are neither dictionary-encoded nor compressed: it
    cannot shrink them and costs a fifth of the writing time."""
    columns = register.physical_columns
    random = {c.name for c in columns if c.role in ("row_key", "identifier")}
    return {
        "compression": {c.name: "none" if c.name in random else "zstd" for c in columns},
        "compression_level": {c.name: _ZSTD_LEVEL for c in columns if c.name not in random},
        "use_dictionary": [c.name for c in columns if c.role is None],
        "write_statistics": True,
        "version": "2.6",
        "data_page_version": "1.0",
    }


class RowGroupWriter:
    """Streams tables into one Parquet file in row groups of exactly ``ROW_GROUP_ROWS`` rows."""

    def __init__(self, path: Path, register: Register) -> None:
        self._writer = pq.ParquetWriter(path, arrow_schema(register), **_parquet_options(register))
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            buffered = pa.concat_tables(self._pending)
            full = (self._pending_rows // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
            for offset in range(0, full, ROW_GROUP_ROWS):
                self._write_group(buffered.slice(offset, ROW_GROUP_ROWS))
            rest = buffered.slice(full)
            self._pending = [rest] if rest.num_rows else []
            self._pending_rows = rest.num_rows

    def close(self) -> None:
        if self._pending_rows:
            self._write_group(pa.concat_tables(self._pending))
        self._pending = []
        self._writer.close()

    def abandon(self) -> None:
        """Release the file after a failure; what was written is discarded by the caller."""
        self._pending = []
        # Already failing: the original error is the one to report.
        with contextlib.suppress(Exception):
            self._writer.close()

    def _write_group(self, table: pa.Table) -> None:
        self._writer.write_table(table.combine_chunks(), row_group_size=ROW_GROUP_ROWS)
