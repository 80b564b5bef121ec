"""Parquet in and out with the fixed schemas, and the quarantine that keeps row counts honest.

Every stage returns a :class:`StageOutput`: the good rows, the quarantined rows (each with its
reason) and how many rows came in. ``rows_in == rows_out + rows_quarantined`` is checked, never
assumed: a row that disappears without a reason is a bug.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from orca_math.common.schema import QUARANTINE

_RAW_CHARS = 2000


class RecordError(ValueError):
    """A record that does not fit its schema; names the file, row and field."""

    def __init__(self, source: str, row: int | None, field: str | None, reason: str):
        self.source, self.row, self.field, self.reason = source, row, field, reason
        where = f"{source}" + (f", row {row}" if row is not None else "") + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {reason}")


class RowCountError(AssertionError):
    """rows in != rows out + rows quarantined: some row vanished or was duplicated."""


def quarantine_row(stage: str, source: str, row: int | None, field: str | None, reason: str, raw: Any) -> dict:
    """A quarantine record; ``raw`` is kept as (truncated) text for a human to inspect."""
    if not isinstance(raw, str):
        try:
            raw = json.dumps(raw, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            raw = repr(raw)
    return {"stage": stage, "source": source, "row": row, "field": field, "reason": reason, "raw": raw[:_RAW_CHARS]}


@dataclass
class StageOutput:
    """What a pure stage function returns: kept rows, quarantined rows, and rows seen."""

    rows: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    rows_in: int = 0

    def check_counts(self) -> "StageOutput":
        """Raise RowCountError unless every input row is either kept or quarantined."""
        if self.rows_in != len(self.rows) + len(self.quarantined):
            raise RowCountError(
                f"rows in ({self.rows_in}) != rows out ({len(self.rows)}) + quarantined ({len(self.quarantined)})"
            )
        return self

    def reasons(self) -> dict[str, int]:
        """Quarantine counts per reason, for the manifest."""
        return dict(Counter(q["reason"] for q in self.quarantined))

    def counts(self) -> dict[str, Any]:
        """The row counts a manifest entry records."""
        return {
            "rows_in": self.rows_in,
            "rows_out": len(self.rows),
            "rows_quarantined": len(self.quarantined),
            "quarantine_reasons": self.reasons(),
        }


def parse_rows(rows: Iterable[tuple[str, int, Any, str | None]], parse: Callable[[Any, str, int], Any],
               out: StageOutput, stage: str, limit: int | None = None) -> Iterator[tuple[str, int, Any, Any]]:
    """(file, row, raw row, read error) -> (file, row, raw row, ``parse(raw, file, row)``) for up to ``limit``
    rows read; a row that did not read or raised ``RecordError`` goes to ``out.quarantined`` with file,
    row, field and reason, and every row read counts in ``out.rows_in``."""
    for source, i, row, err in rows:
        if limit is not None and out.rows_in >= limit:
            break
        out.rows_in += 1
        if err is not None:
            out.quarantined.append(quarantine_row(stage, source, i, None, err, row))
            continue
        try:
            record = parse(row, source, i)
        except RecordError as e:
            out.quarantined.append(quarantine_row(stage, source, i, e.field, e.reason, row))
            continue
        yield source, i, row, record


def to_table(rows: Iterable[dict], schema: pa.Schema, source: str = "<records>") -> pa.Table:
    """Rows -> Arrow table with exactly ``schema``; a bad row raises RecordError naming it."""
    rows = list(rows)
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
        # Find the culprit so the error names a row and a field, not just "conversion failed".
        for i, row in enumerate(rows):
            for f in schema:
                try:
                    pa.array([row.get(f.name)], type=f.type)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as fe:
                    raise RecordError(source, i, f.name, str(fe)) from e
                if row.get(f.name) is None and not f.nullable:
                    raise RecordError(source, i, f.name, "required field is missing") from e
        raise RecordError(source, None, None, str(e)) from e


def _check_required(table: pa.Table, schema: pa.Schema, source: str) -> None:
    for f in schema:
        if not f.nullable and table.column(f.name).null_count:
            row = table.column(f.name).to_pylist().index(None)
            raise RecordError(source, row, f.name, "required field is missing")


def write_parquet(rows: Iterable[dict], schema: pa.Schema, path: str | Path) -> Path:
    """Write rows with ``schema`` to ``path`` atomically (a crash never leaves half a file)."""
    path = Path(path)
    table = to_table(rows, schema, str(path))
    _check_required(table, schema, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table_atomic(table, path)
    return path


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temp name beside ``path`` to write, renamed to ``path`` when the block ends without an
    error (removed otherwise): readers see all of the file or none of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temp file and a rename: readers see all of it or none."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def parquet_files(path: str | Path) -> list[Path]:
    """A Parquet file, or every ``*.parquet`` in a folder (sorted, hidden temp files skipped)."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.glob("*.parquet") if not f.name.startswith("."))
    if p.exists():
        return [p]
    raise FileNotFoundError(f"{p}: no such file or folder")


def count_rows(path: str | Path) -> int:
    """Rows in a Parquet file or folder, from the files' footers."""
    return sum(pq.read_metadata(f).num_rows for f in parquet_files(path))


def read_table(path: str | Path, schema: pa.Schema) -> pa.Table:
    """Read Parquet (file or folder) and conform it to ``schema``; errors name the file and field."""
    tables = []
    for f in parquet_files(path):
        t = pq.read_table(f)
        missing = [n for n in schema.names if n not in t.column_names]
        if missing:
            raise RecordError(str(f), None, missing[0], f"column missing (schema needs {schema.names})")
        try:
            tables.append(t.select(schema.names).cast(schema))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise RecordError(str(f), None, None, f"does not match the schema: {e}") from e
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)


def read_parquet(path: str | Path, schema: pa.Schema) -> list[dict]:
    """Read Parquet (file or folder) into a list of dicts with ``schema``'s fields."""
    return read_table(path, schema).to_pylist()


def write_quarantine(rows: list[dict], path: str | Path) -> Path:
    """Write quarantined rows (possibly none: an empty file says 'checked, nothing bad')."""
    return write_parquet(rows, QUARANTINE, path)
