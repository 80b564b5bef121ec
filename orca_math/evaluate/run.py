"""Evaluation on Ray: read problems, sample greedily with vLLM in Ray Data, score, write results."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from orca_math.evaluate.stage import EvalConfig, accuracy, data_hash, score_samples
from orca_math.manifest import RunManifest
from orca_math.prompts import prompt_rows
from orca_math.ray_runtime import ensure_ray
from orca_math.records import write_parquet, write_quarantine
from orca_math.sampling.ray_sampling import sample_rows
from orca_math.schema import EVAL_RESULT
from orca_math.seeds import read_problems, resolve_data_spec

log = logging.getLogger(__name__)


def run_eval(model: str, cfg: EvalConfig, out_dir: str | Path, stage: str = "eval",
             manifest: RunManifest | None = None) -> dict:
    """Evaluate ``model`` and write ``results.parquet``, ``quarantine.parquet``, ``summary.json``.

    Returns the summary (accuracy, n, model, data hash, wall time, ...).
    """
    out_dir = Path(out_dir)
    manifest = manifest or RunManifest(out_dir / "manifest.json")
    engine = cfg.engine.model_copy(update={"model": model})
    data = resolve_data_spec(cfg.data)
    started = time.perf_counter()
    with manifest.stage(stage, cfg, {"model": model, "data": data}) as entry:
        read = read_problems(data, limit=cfg.limit, stage=stage)
        problems = read.rows
        log.info("%s: %d problems from %s (%d quarantined on read)", stage, len(problems), data, len(read.quarantined))
        ensure_ray()
        sample_start = time.perf_counter()
        samples = sample_rows(prompt_rows(problems, cfg.prompt_template), engine, cfg.decoding, model_name=model)
        sample_s = time.perf_counter() - sample_start
        scored = score_samples(problems, samples, model)
        n = len(problems)
        summary = {
            "stage": stage,
            "model": model,
            "data": data,
            "data_hash": data_hash(problems),
            "n": n,
            "correct": sum(r["correct"] for r in scored.rows),
            "accuracy": accuracy(scored.rows, n),
            "no_answer": sum(r["extracted_answer"] is None for r in scored.rows),
            "read_quarantined": len(read.quarantined),
            "scored_quarantined": len(scored.quarantined),
            "completion_tokens": sum(r["completion_tokens"] or 0 for r in scored.rows),
            "sampling_s": round(sample_s, 3),
            "wall_s": round(time.perf_counter() - started, 3),
        }
        write_parquet(scored.rows, EVAL_RESULT, out_dir / "results.parquet")
        write_quarantine(read.quarantined + scored.quarantined, out_dir / "quarantine.parquet")
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        entry.update(
            engine=engine.choice_record(),
            outputs={"results": str(out_dir / "results.parquet"), "summary": str(out_dir / "summary.json")},
            rows_in=read.rows_in,
            rows_out=len(scored.rows),
            rows_quarantined=len(read.quarantined) + len(scored.quarantined),
            quarantine_reasons={**read.reasons(), **scored.reasons()},
            accuracy=summary["accuracy"],
        )
    return summary
