"""Per-row stages that stream: read Parquet -> map batches -> commit one part per batch.

Layout under a stage's output folder (``samples.parquet`` stands for the stage's output)::

    samples.parquet/part-<key>.parquet      the rows, in the output schema (a Parquet dataset:
                                            pandas and pyarrow.dataset read the folder)
    quarantine.parquet/part-<key>.parquet   the batch's quarantined rows, with their reasons
    .committed/part-<key>.parquet           the commit: the batch's input ids, its counts in the
                                            file's metadata

A batch writes its rows and its quarantine first, then its commit file, each by atomic rename;
a part without a commit file is a batch that died in flight and is deleted on the next start.
A rerun skips every input id found in a commit file, so after a SIGKILL only the batches in
flight are recomputed, and as long as each row's output depends on that row alone (per-problem
sampling seeds, per-sample verdicts) the folder holds the same rows as an uninterrupted run.

Why not Ray Data's ``CheckpointConfig``: it checkpoints the id column of the rows reaching its
one sink, so quarantined rows (a second output) would be redone or lost, and practice and eval
do not keep their input's id column (problem ``id`` -> ``problem_id``). Everything here is
pyarrow; the Ray shell is :func:`stream_stage`.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from orca_math.common.records import StageOutput, count_rows, to_table, write_table_atomic
from orca_math.common.schema import QUARANTINE, stable_id

log = logging.getLogger(__name__)

COMMITTED_DIR = ".committed"
QUARANTINE_DIR = "quarantine.parquet"
_META_KEY = b"orca_math.part"
_PART = "part-"


@dataclass
class PartsSummary:
    """What the committed parts hold, summed: the counts a manifest entry records."""

    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: Counter = field(default_factory=Counter)
    stats: Counter = field(default_factory=Counter)
    inputs: int = 0  # input ids committed (what resume counts in)
    parts: int = 0

    def add(self, meta: dict, inputs: int) -> None:
        self.rows_in += meta["rows_in"]
        self.rows_out += meta["rows_out"]
        self.rows_quarantined += meta["rows_quarantined"]
        self.quarantine_reasons.update(meta["reasons"])
        self.stats.update(meta["stats"])
        self.inputs += inputs
        self.parts += 1

    def counts(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "rows_quarantined": self.rows_quarantined,
                "quarantine_reasons": dict(self.quarantine_reasons)}


class StageParts:
    """The part folders of one stage output; safe to use from many Ray workers at once."""

    def __init__(self, out_dir: str | Path, output: str, schema: pa.Schema,
                 more: dict[str, pa.Schema] | None = None):
        """``output``: the folder of the stage's rows, in ``schema``; ``more``: other outputs a batch
        writes beside them (folder -> schema), committed with the same part."""
        self.out_dir = Path(out_dir)
        self.data_dir = self.out_dir / output
        self.quarantine_dir = self.out_dir / QUARANTINE_DIR
        self.commit_dir = self.out_dir / COMMITTED_DIR
        self.folders = {output: schema, **(more or {}), QUARANTINE_DIR: QUARANTINE}

    def _names(self, folder: Path) -> list[str]:
        if not folder.exists():
            return []
        return sorted(f.name for f in folder.iterdir() if f.name.startswith(_PART))

    def committed(self) -> list[str]:
        """Names of the committed parts."""
        return self._names(self.commit_dir)

    def remove_uncommitted(self) -> int:
        """Delete parts and temp files of batches that died before their commit; return how many."""
        done = set(self.committed())
        removed = 0
        for folder in [self.out_dir / f for f in self.folders] + [self.commit_dir]:
            if not folder.exists():
                continue
            for f in folder.iterdir():
                if f.name.startswith(".") or (folder is not self.commit_dir and f.name not in done):
                    f.unlink()
                    removed += 1
        return removed

    def commit(self, ids: list[str], out: StageOutput, stats: dict[str, int] | None = None,
               key: str | None = None) -> str:
        """Write one batch (rows, quarantine, then the commit file); return the part name.

        ``key`` defaults to a hash of the batch's input ids, so a retried batch rewrites its own part.
        """
        out.check_counts()
        name = f"{_PART}{key or stable_id(*sorted(ids))}.parquet"
        self.write_part(name, ids, {self.data_dir.name: out.rows, QUARANTINE_DIR: out.quarantined},
                        {**out.counts(), "reasons": out.reasons(), "stats": dict(stats or {})})
        return name

    def write_part(self, name: str, ids: list[str], rows: dict[str, list[dict]], meta: dict) -> None:
        """Write one part of each output folder (``rows``: folder -> rows; empty ones are left
        out), then its commit file: ``ids`` (the inputs it covers) with ``meta`` (``rows_in``,
        ``rows_out``, ``rows_quarantined``, ``reasons``, ``stats``) in the file's metadata."""
        for folder in [*rows, COMMITTED_DIR]:
            (self.out_dir / folder).mkdir(parents=True, exist_ok=True)
        for folder, part_rows in rows.items():
            if part_rows:
                path = self.out_dir / folder / name
                write_table_atomic(to_table(part_rows, self.folders[folder], str(path)), path)
        marker = pa.table({"id": pa.array(ids, pa.string())}).replace_schema_metadata(
            {_META_KEY: json.dumps(meta).encode()})
        write_table_atomic(marker, self.commit_dir / name)  # the commit

    def committed_ids(self) -> frozenset[str]:
        """Every input id in a committed part (read by the workers that skip them, not the driver)."""
        ids: set[str] = set()
        for name in self.committed():
            ids.update(pq.read_table(self.commit_dir / name, columns=["id"]).column("id").to_pylist())
        return frozenset(ids)

    def summary(self, names: Iterable[str] | None = None) -> PartsSummary:
        """Counts summed over the committed parts (``names``: only those), from the files' footers."""
        s = PartsSummary()
        for name in self.committed() if names is None else names:
            md = pq.read_metadata(self.commit_dir / name)
            s.add(json.loads(md.metadata[_META_KEY]), md.num_rows)
        return s

    def finish(self) -> None:
        """Leave a readable dataset even when no batch wrote anything (an empty part says 'checked')."""
        for name, schema in self.folders.items():
            folder = self.out_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            if not self._names(folder):
                write_table_atomic(schema.empty_table(), folder / f"{_PART}empty.parquet")


class CommitBatches:
    """Base ``map_batches`` callable: skip committed ids, process the rest, commit one part per batch.

    Subclasses implement ``process(rows) -> (StageOutput, stats)``. Returns one row per committed
    part (its name and input count): the driver sees summaries, never the rows.
    """

    def __init__(self, parts: StageParts, id_column: str):
        self.parts, self.id_column = parts, id_column
        self.done = parts.committed_ids()

    def process(self, rows: list[dict]) -> tuple[StageOutput, dict[str, int]]:
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [r for r in batch.to_pylist() if r[self.id_column] not in self.done]
        names: list[str] = []
        if rows:
            out, stats = self.process(rows)
            names.append(self.parts.commit([r[self.id_column] for r in rows], out, stats))
        return pa.table({"part": pa.array(names, pa.string()),
                         "inputs": pa.array([len(rows)] * len(names), pa.int64())})


@dataclass
class StreamResult:
    """A streamed stage's counts: everything committed, and of its rows in, how many this attempt
    found committed (``rows_restored``) and how many it did (``rows_computed``): every count in
    the one unit of ``rows_in``, so restored + computed == rows in."""

    summary: PartsSummary
    rows_restored: int
    rows_computed: int

    def manifest_fields(self, unit: str) -> dict[str, Any]:
        """The manifest's counts, ``unit`` naming what one row is (``samples``, ``problems``)."""
        return {**self.summary.counts(), "rows_restored": self.rows_restored, "rows_computed": self.rows_computed,
                "row_unit": unit}


def read_dataset(path: str | Path, columns: list[str] | None = None, blocks: int | None = None):
    """A Ray Data dataset of a Parquet file or folder of parts (``columns``: only those), one block per
    row group (at least ``blocks``: row groups are split), read by tasks that ask for no CPU.

    Reading is light, and the engine hosts and judge replicas may hold every CPU of a small cluster
    from one stage to the next: a task asking for any CPU (a tenth included: a host that asks for 1
    CPU leaves no fraction free on a 2-CPU node with the judge up) would then wait forever.
    ``ray.data.read_parquet`` starts such tasks before any read: the file listing (its V2 reader)
    or the sampling of files for their size (V1). Here the driver reads only the files' footers.
    """
    import ray
    import ray.data

    # Asking for no CPU also lifts the CPU bound on how many reads run at once: capped here, or a
    # big input starts every read together and they crowd out the stage's own work.
    concurrency = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return ray.data.read_datasource(_row_groups(path, columns), num_cpus=0, concurrency=concurrency,
                                    override_num_blocks=blocks)


def _row_groups(path: str | Path, columns: list[str] | None):
    """A ``ray.data.Datasource`` of the Parquet files :func:`~orca_math.common.records.parquet_files`
    finds at ``path``: a read task per row group, sized from the footers."""
    from ray.data import Datasource
    from ray.data.block import BlockMetadata
    from ray.data.datasource import ReadTask

    from orca_math.common.records import parquet_files

    def read(file: Path, group: int | None) -> list[pa.Table]:
        if group is None:  # a file with no rows has no row group: its empty table keeps the schema
            return [pq.read_table(file, columns=columns)]
        return [pq.ParquetFile(file).read_row_group(group, columns=columns)]

    groups = [(f, i, None if i is None else meta.row_group(i)) for f in parquet_files(path)
              for meta in [pq.read_metadata(f)] for i in (range(meta.num_row_groups) or [None])]

    class RowGroups(Datasource):
        def estimate_inmemory_data_size(self) -> int:
            return sum(g.total_byte_size for _, i, g in groups if i is not None)

        def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None) -> list:
            return [ReadTask(lambda f=f, i=i: read(f, i),
                             BlockMetadata(num_rows=0 if i is None else g.num_rows,
                                           size_bytes=0 if i is None else int(g.total_byte_size),
                                           input_files=[str(f)], exec_stats=None))
                    for f, i, g in groups]

    return RowGroups()


def stream_stage(input_path: str | Path, parts: StageParts, udf: type[CommitBatches], udf_kwargs: dict,
                 batch_size: int, concurrency: int = 1, tasks_per_actor: int | None = None,
                 **map_kwargs: Any) -> StreamResult:
    """``read_parquet(input) -> map_batches(udf) ->`` committed parts; resumes from earlier parts.

    ``udf_kwargs`` go to the callable class (with ``parts``); ``concurrency`` is its actor count;
    ``tasks_per_actor`` bounds the batches queued on one actor (None: Ray Data's default);
    ``map_kwargs`` go to ``map_batches`` (num_cpus, ...). The driver holds the part names and counts only.
    """
    import ray.data

    removed = parts.remove_uncommitted()
    before = parts.committed()
    # A part that covers no input (a stage's read quarantine, written again by every attempt) is not restored work.
    restored = parts.summary([n for n in before if pq.read_metadata(parts.commit_dir / n).num_rows])
    if before:
        log.info("%s: resuming, %d inputs in %d committed parts (%d stale files removed)",
                 parts.data_dir, restored.inputs, len(before), removed)
    # A block is what an actor is handed at once: one batch each, so that work goes to whichever actor is free.
    ds = read_dataset(input_path, blocks=max(1, math.ceil(count_rows(input_path) / batch_size))).map_batches(
        udf, fn_constructor_kwargs={"parts": parts, **udf_kwargs}, batch_size=batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=concurrency, max_tasks_in_flight_per_actor=tasks_per_actor),
        **map_kwargs)
    for _ in ds.iter_batches(batch_size=None, batch_format="pyarrow"):  # each batch is one part, committed
        pass
    parts.finish()
    total = parts.summary()
    return StreamResult(total, restored.rows_in, total.rows_in - restored.rows_in)
