"""The practice stage: N solutions per problem from the current student M_k, every one kept.

The Ray/IO shell around ``core`` (which problems, which samples are kept): the round's problems
are written once, then stream through the engine in batches, each committed as one part.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orca_math.common.records import StageOutput, parquet_files
from orca_math.common.runner import Stage, StageContext, run_stage
from orca_math.common.sampling.config import DecodingConfig
from orca_math.common.sampling.hosts import EngineLease, HostedSampler, lease_engines, release_engines
from orca_math.common.sampling.ray_sampling import sample_problems
from orca_math.common.schema import PROBLEM, SAMPLE
from orca_math.common.streaming import CommitBatches, StageParts, stream_stage
from orca_math.practice.config import PracticeConfig
from orca_math.practice.core import check_samples, practice_ranges

log = logging.getLogger(__name__)


def write_practice_slice(problems_path: str | Path, offset: int, limit: int | None, dest: str | Path) -> int:
    """Write the rows :func:`~orca_math.practice.core.practice_ranges` picks from a problems file or
    folder to ``dest``, batch by batch.

    The driver holds one record batch at a time, never the set; returns the rows written.
    """
    files = parquet_files(problems_path)
    ranges = practice_ranges(sum(pq.read_metadata(f).num_rows for f in files), offset, limit)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with pq.ParquetWriter(tmp, PROBLEM) as writer:
        for lo, hi in ranges:
            seen = 0
            for f in files:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=8192):
                    b_lo, b_hi = max(lo - seen, 0), min(hi - seen, batch.num_rows)
                    seen += batch.num_rows
                    if b_lo < b_hi:
                        t = pa.Table.from_batches([batch.slice(b_lo, b_hi - b_lo)])
                        writer.write_table(t.select(PROBLEM.names).cast(PROBLEM))
                    if seen >= hi:
                        break
                if seen >= hi:
                    break
    tmp.replace(dest)
    return sum(hi - lo for lo, hi in ranges)


class PracticeBatches(CommitBatches):
    """``map_batches`` callable sampling on an engine host: a batch of problems -> their samples, committed."""

    def __init__(self, parts: StageParts, lease: EngineLease, decoding: DecodingConfig,
                 prompt_template: str, model_name: str):
        super().__init__(parts, "id")
        self.sampler = HostedSampler(lease, decoding, model_name)
        self.n, self.template = decoding.n, prompt_template

    def process(self, problems: list[dict]) -> tuple[StageOutput, dict[str, int]]:
        samples = sample_problems(self.sampler, problems, self.template)
        checked = check_samples(problems, samples, self.n)
        checked.rows.sort(key=lambda s: (s["problem_id"], s["sample_index"]))
        return checked, {"problems": len(problems)}


def practice_stage(cfg: PracticeConfig, out_dir: str | Path, *, model: str | Path, problems: str | Path,
                   name: str = "practice", model_name: str | None = None) -> Stage:
    """Sample ``cfg.decoding.n`` solutions per problem into ``samples.parquet/`` (+ ``quarantine.parquet/``).

    Streams: the problems are read by Ray Data, sampled in batches, and each batch is committed
    as one part; a rerun after a crash samples only the problems not yet committed.
    ``model_name`` (default: ``model``) goes into each sample's id and ``model`` column; a run
    passes its label (``M1``) so ids do not depend on where the run folder lives.
    """
    model, problems_path = str(model), str(problems)
    model_name = model_name or model

    def practice(c: StageContext) -> dict:
        from orca_math.common.ray_runtime import ensure_ray

        selected = c.out / "problems.parquet"
        n_problems = write_practice_slice(problems_path, cfg.offset, cfg.limit, selected)
        ensure_ray()
        log.info("%s: %d problems x %d samples from %s", c.name, n_problems, cfg.decoding.n, model)
        lease = lease_engines(cfg.engine.model_copy(update={"model": model}))
        engine = lease.engine
        parts = StageParts(c.out, "samples.parquet", SAMPLE)
        result = stream_stage(
            selected, parts, PracticeBatches,
            {"lease": lease, "decoding": cfg.decoding,
             "prompt_template": cfg.prompt_template, "model_name": model_name},
            batch_size=engine.batch_size, concurrency=engine.concurrency, num_cpus=0,  # the hosts hold the engines
            tasks_per_actor=1)  # a batch is an engine's whole attention: queue none behind it, the next free engine takes it
        return {"outputs": {"samples": str(parts.data_dir), "quarantine": str(parts.quarantine_dir)},
                "problems": n_problems, "engine": engine.choice_record(), **result.manifest_fields("samples")}

    # The model's name is in every sample id: another name, other samples.
    return Stage(name, cfg, practice, out=Path(out_dir),
                 inputs={"model": model, "model_name": model_name, "problems": problems_path})


def run_practice(model: str | Path, problems_path: str | Path, out_dir: str | Path, cfg: PracticeConfig,
                 model_name: str | None = None) -> Path:
    """:func:`practice_stage` on its own (manifest in ``out_dir``); returns the samples folder."""
    try:
        run_stage(practice_stage(cfg, out_dir, model=model, problems=problems_path, model_name=model_name))
    finally:
        release_engines()
    return Path(out_dir) / "samples.parquet"
