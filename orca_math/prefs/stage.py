"""The prefs stage: read problems, samples and judgments; write DPO pairs, KTO examples, a report.

Streams on Ray Data in two passes over a round's rows; the driver holds the donor pool and the
names of the written parts, never the samples:

1. problems, samples and judgments, read with only the columns used, are partitioned by problem
   id (``repartition(keys=...)``: a hash shuffle; a block holds every row of its problems) into
   one practiced record per problem (:func:`~orca_math.prefs.core.practiced_problem`), kept in
   Ray's object store (spilled to disk when it is full). ``groupby(...).map_groups`` does the
   same shuffle but calls Python once per problem: 5x slower at 4 samples a problem. A round
   that fits one partition (``cfg.samples_per_partition``) runs as one Ray task instead: the same
   functions and memory bound, without the shuffle's start-up (1-2 s against 16-23 s for the
   demo's 4,000 samples on a 2-core VM).
2. The donor pool (:func:`~orca_math.prefs.core.donor_pool`): each block's first donors, merged
   on the driver, at most ``cfg.donor_pool`` problems' negatives.
   Written to ``donor_pool.parquet`` before any part.
3. Each block of practiced records -> pairs, KTO examples, positives and quarantined samples,
   written by the worker as parts (:func:`~orca_math.prefs.core.problem_preferences`) and
   committed as the streamed stages commit theirs (:class:`~orca_math.common.streaming.StageParts`:
   the commit file holds the part's problem ids and counts).

A problem's rows are drawn with its own random generator and the pool is chosen by a hash, so
the rows written do not depend on how the inputs are split into files, blocks or partitions. That
is also what makes the stage resumable: a rerun drops the committed problems' rows as it reads
them, lends from the saved pool, and writes only the problems left.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orca_math.common.records import count_rows, to_table, write_table_atomic
from orca_math.common.runner import Stage, StageContext, run_stage
from orca_math.common.schema import KTO_EXAMPLE, PREFERENCE_PAIR, QUARANTINE, stable_id
from orca_math.common.streaming import QUARANTINE_DIR, StageParts, read_dataset
from orca_math.prefs.config import PreferenceConfig
from orca_math.prefs.core import (
    SAMPLE_FIELDS,
    Preferences,
    donor_pool,
    donors,
    practiced_problem,
    problem_preferences,
    round_report,
)

log = logging.getLogger(__name__)

# The three inputs as one table to group: a row is a problem, a sample or a judgment (``kind``).
PROBLEM_ROW = pa.schema([
    ("problem_id", pa.string()), ("kind", pa.string()), ("question", pa.string()),
    ("reference_solution", pa.string()), ("sample_id", pa.string()), ("sample_index", pa.int32()),
    ("text", pa.string()), ("correct", pa.bool_()),
])
_COLUMNS = {  # kind -> (the columns read, renamed to PROBLEM_ROW's)
    "problem": {"id": "problem_id", "question": "question", "reference_solution": "reference_solution"},
    "sample": {k: k for k in SAMPLE_FIELDS},
    "judgment": {"problem_id": "problem_id", "sample_id": "sample_id", "correct": "correct"},
}
PRACTICED = pa.schema([
    ("problem_id", pa.string()), ("question", pa.string()), ("reference_solution", pa.string()),
    ("positives", pa.list_(pa.string())), ("negatives", pa.list_(pa.string())),
    ("quarantined", pa.list_(pa.struct(list(QUARANTINE)))),
])
DONOR = pa.schema([("rank", pa.string()), ("problem_id", pa.string()), ("negatives", pa.list_(pa.string()))])
OUTPUTS = {"pairs": "pairs.parquet", "kto": "kto.parquet",
           "positives": "positives.parquet",  # the KTO examples labelled true: what RFT trains on
           "quarantine": QUARANTINE_DIR}
POOL_FILE = "donor_pool.parquet"  # the round's donors, kept so that a resumed attempt lends the same


def _parts(out_dir: str | Path) -> StageParts:
    return StageParts(out_dir, OUTPUTS["pairs"], PREFERENCE_PAIR,
                      {OUTPUTS["kto"]: KTO_EXAMPLE, OUTPUTS["positives"]: KTO_EXAMPLE})


@functools.lru_cache(maxsize=2)
def _done(out_dir: str, names: tuple[str, ...]) -> pa.Array:
    """The problem ids already committed (cached per worker process while the commits stay the same)."""
    return pa.array(sorted(_parts(out_dir).committed_ids()), pa.string())


def as_problem_rows(batch: pa.Table, kind: str, parts: StageParts) -> pa.Table:
    """``map_batches`` function: one input's columns as :data:`PROBLEM_ROW` rows of ``kind``, less
    the rows of problems whose preferences are already committed (a resumed stage)."""
    cols = {dst: batch.column(src) for src, dst in _COLUMNS[kind].items()}
    cols["kind"] = pa.array([kind] * batch.num_rows, pa.string())
    table = pa.table([cols[f.name].cast(f.type) if f.name in cols else pa.nulls(batch.num_rows, f.type)
                      for f in PROBLEM_ROW], schema=PROBLEM_ROW)
    done = _done(str(parts.out_dir), tuple(parts.committed()))
    return table.filter(pc.invert(pc.is_in(table.column("problem_id"), value_set=done))) if len(done) else table


def practiced_partition(block: pa.Table) -> pa.Table:
    """``map_batches`` function: a partition's :data:`PROBLEM_ROW` rows (every row of its problems)
    -> one practiced record per problem, in problem id order."""
    groups: dict[str, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    cols = block.to_pydict()
    for i, (pid, kind) in enumerate(zip(cols["problem_id"], cols["kind"])):
        problems, samples, judgments = groups[pid]
        if kind == "problem":
            problems.append({"id": pid, "question": cols["question"][i],
                             "reference_solution": cols["reference_solution"][i]})
        elif kind == "sample":
            samples.append({k: cols[k][i] for k in SAMPLE_FIELDS})
        else:
            judgments.append({"sample_id": cols["sample_id"][i], "correct": cols["correct"][i]})
    recs = (practiced_problem(pid, *groups[pid]) for pid in sorted(groups))
    return to_table([r for r in recs if r], PRACTICED)


def block_donors(block: pa.Table, size: int, cfg: PreferenceConfig, round_k: int) -> pa.Table:
    """``map_batches`` function: a block's first ``size`` donors (the pool is the first of these)."""
    recs = block.select(["problem_id", "question", "negatives"]).to_pylist()
    return to_table(donor_pool(donors(recs, cfg, round_k), size), DONOR)


def write_parts(block: pa.Table, parts: StageParts, pool: list[dict], cfg: PreferenceConfig,
                round_k: int) -> pa.Table:
    """``map_batches`` function: practiced records -> one committed part of every output per
    ``cfg.problems_per_part`` problems (the commit holds their ids, and the counts the report
    sums); returns the parts' names."""
    names = []
    for lo in range(0, block.num_rows, cfg.problems_per_part):
        recs = block.slice(lo, cfg.problems_per_part).to_pylist()
        prefs = Preferences()
        for rec in recs:
            prefs.add(problem_preferences(rec, pool, cfg, round_k))
        ids = [r["problem_id"] for r in recs]
        name = f"part-{stable_id(*ids)}.parquet"  # the same problems write the same part
        used, quarantined = prefs.counts["samples_used"], len(prefs.quarantined)
        parts.write_part(name, ids, {
            OUTPUTS["pairs"]: prefs.pairs, OUTPUTS["kto"]: prefs.kto_examples,
            OUTPUTS["positives"]: [e for e in prefs.kto_examples if e["label"]],
            QUARANTINE_DIR: prefs.quarantined,
        }, {"rows_in": used + quarantined, "rows_out": used, "rows_quarantined": quarantined,
            "reasons": Counter(q["reason"] for q in prefs.quarantined), "stats": prefs.counts})
        names.append(name)
    return pa.table({"part": pa.array(names, pa.string())})


def _lend(pool: list[dict] | None, pool_path: Path, cfg: PreferenceConfig,
          block_pools: Callable[[], Iterable[list[dict]]]) -> list[dict]:
    """The round's donor pool: the saved one, or merged from ``block_pools()`` and saved."""
    if pool is None:
        pool = []
        if cfg.borrows:
            for block_pool in block_pools():
                pool = donor_pool(pool + block_pool, cfg.donor_pool)
        write_table_atomic(to_table(pool, DONOR), pool_path)
    return pool


def _shuffled(inputs: dict[str, str], partitions: int, parts: StageParts, pool: list[dict] | None,
              pool_path: Path, cfg: PreferenceConfig, round_k: int) -> tuple[list[str], int]:
    """The round on Ray Data, hash-partitioned by problem id; returns the new parts' names and the pool's size."""
    rows = [read_dataset(path, list(_COLUMNS[kind])).map_batches(
        as_problem_rows, fn_kwargs={"kind": kind, "parts": parts}, batch_format="pyarrow", batch_size=None,
        num_cpus=0) for kind, path in inputs.items()]
    # A hash shuffle on the problem id: each output block holds every row of its problems.
    practiced = (rows[0].union(*rows[1:]).repartition(partitions, keys=["problem_id"])
                 .map_batches(practiced_partition, batch_format="pyarrow", batch_size=None))
    if pool is None and cfg.borrows:
        practiced = practiced.materialize()  # read twice: for the pool, then for the parts

    def block_pools():
        kwargs = {"size": cfg.donor_pool, "cfg": cfg, "round_k": round_k}
        for batch in practiced.map_batches(block_donors, fn_kwargs=kwargs, batch_format="pyarrow",
                                           batch_size=None).iter_batches(batch_size=None, batch_format="pyarrow"):
            yield batch.to_pylist()

    pool = _lend(pool, pool_path, cfg, block_pools)
    written = practiced.map_batches(write_parts, fn_kwargs={"parts": parts, "pool": pool, "cfg": cfg,
                                                            "round_k": round_k},
                                    batch_format="pyarrow", batch_size=None)
    return [n for b in written.iter_batches(batch_size=None, batch_format="pyarrow")
            for n in b.column("part").to_pylist()], len(pool)


def _one_partition(inputs: dict[str, str], parts: StageParts, pool: list[dict] | None, pool_path: Path,
                   cfg: PreferenceConfig, round_k: int) -> tuple[list[str], int]:
    """The round as one partition (run as one Ray task): what :func:`_shuffled` does, without the shuffle."""
    practiced = practiced_partition(pa.concat_tables(
        as_problem_rows(pq.read_table(path, columns=list(_COLUMNS[kind])), kind, parts)
        for kind, path in inputs.items()))
    pool = _lend(pool, pool_path, cfg, lambda: [block_donors(practiced, cfg.donor_pool, cfg, round_k).to_pylist()])
    return write_parts(practiced, parts, pool, cfg, round_k).column("part").to_pylist(), len(pool)


def shuffled(samples: int | None, cfg: PreferenceConfig) -> bool:
    """Whether a round of ``samples`` (None: unknown) is shuffled by Ray Data tasks, each asking for a CPU;
    a round of one partition is one task that asks for none."""
    return samples is None or samples > cfg.samples_per_partition


def write_preferences(problems_path: str | Path, samples_path: str | Path, judgments_path: str | Path,
                      out_dir: str | Path, cfg: PreferenceConfig, round_k: int) -> tuple[dict[str, Path], dict]:
    """Build the round's preferences on Ray Data and write them, keeping the problems an earlier
    attempt committed; return the paths and the manifest fields."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = _parts(out_dir)
    pool_path = out_dir / POOL_FILE
    if not pool_path.exists():  # written before any part: without it, no part can be committed
        shutil.rmtree(parts.commit_dir, ignore_errors=True)
    parts.remove_uncommitted()
    before = parts.committed()
    rows_in = count_rows(samples_path)
    inputs = {"problem": str(problems_path), "sample": str(samples_path), "judgment": str(judgments_path)}
    # A resumed attempt lends what the first one's whole round did.
    pool = pq.read_table(pool_path).to_pylist() if pool_path.exists() else None
    partitions = math.ceil(rows_in / cfg.samples_per_partition)
    if shuffled(rows_in, cfg):
        new, pool_size = _shuffled(inputs, partitions, parts, pool, pool_path, cfg, round_k)
    else:  # one partition's worth: one task, without starting a shuffle (most of a small round's time)
        import ray

        task = ray.remote(num_cpus=0)(_one_partition)
        new, pool_size = ray.get(task.remote(inputs, parts, pool, pool_path, cfg, round_k))
    parts.finish()
    total = parts.summary()
    report = {**round_report(total.stats), "donor_pool": pool_size}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    paths = {key: out_dir / folder for key, folder in OUTPUTS.items()}
    return paths, {"report": report, "rows_in": rows_in, "rows_out": total.rows_out,
                   "rows_quarantined": total.rows_quarantined, "quarantine_reasons": dict(total.quarantine_reasons),
                   "rows_restored": parts.summary(before).rows_in, "rows_computed": parts.summary(new).rows_in,
                   "row_unit": "samples"}


def prefs_stage(cfg: PreferenceConfig, out_dir: str | Path, *, problems: str | Path, samples: str | Path,
                judgments: str | Path, round_k: int = 1, name: str = "prefs") -> Stage:
    """Write ``pairs.parquet/`` (DPO), ``kto.parquet/`` (KTO), ``positives.parquet/`` (the KTO examples
    labelled true, for rejection-sampling fine-tuning), ``quarantine.parquet/`` (folders of parts)
    and ``report.json``.

    Streams on Ray Data (see the module's docstring) and resumes: a rerun after a kill keeps the
    committed parts and builds only the problems they do not cover.
    """
    problems_path, samples_path, judgments_path = str(problems), str(samples), str(judgments)
    inputs = {"problems": problems_path, "samples": samples_path, "judgments": judgments_path,
              "round": str(round_k)}  # the round is in every pair and example id

    def build(c: StageContext) -> dict:
        from orca_math.common.ray_runtime import ensure_ray

        ensure_ray()
        paths, fields = write_preferences(problems_path, samples_path, judgments_path, c.out, cfg, round_k)
        log.info("%s: %s", c.name, fields["report"])
        return {"outputs": {k: str(v) for k, v in paths.items()}, **fields}

    return Stage(name, cfg, build, out=Path(out_dir), inputs=inputs)


def run_prefs(problems_path: str | Path, samples_path: str | Path, judgments_path: str | Path,
              out_dir: str | Path, cfg: PreferenceConfig, round_k: int = 1) -> dict[str, Path]:
    """:func:`prefs_stage` on its own (manifest in ``out_dir``); returns its folders by name
    (``pairs``, ``kto``, ``positives``, ``quarantine``)."""
    entry = run_stage(prefs_stage(cfg, out_dir, problems=problems_path, samples=samples_path,
                                  judgments=judgments_path, round_k=round_k))
    return {k: Path(v) for k, v in entry["outputs"].items()}
