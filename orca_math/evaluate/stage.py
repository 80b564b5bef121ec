"""The eval stage: problems stream through the engine (greedy) and the judge app, committed per batch.

``eval_stage`` is what the recipe runs (``eval-M1``, ...), ``run_eval`` the same stage on its own
(``orca-math eval``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pyarrow.parquet as pq

from orca_math.common.records import StageOutput
from orca_math.common.runner import Stage, StageContext, run_stage
from orca_math.common.sampling.config import DecodingConfig
from orca_math.common.sampling.hosts import EngineLease, HostedSampler, lease_engines, release_engines
from orca_math.common.sampling.ray_sampling import sample_problems
from orca_math.common.schema import EVAL_RESULT
from orca_math.common.streaming import CommitBatches, StageParts, stream_stage
from orca_math.evaluate.config import EvalConfig
from orca_math.evaluate.core import data_hash, score_samples
from orca_math.judge.config import JudgeServeConfig
from orca_math.seeds import resolve_data_spec
from orca_math.seeds.readers import write_problems
from orca_math.teacher.config import TeacherConfig

log = logging.getLogger(__name__)


class EvalBatches(CommitBatches):
    """``map_batches`` callable: problems -> completions (from an engine host) -> the judge's verdicts, committed."""

    def __init__(self, parts: StageParts, lease: EngineLease, decoding: DecodingConfig,
                 prompt_template: str, model: str, app_name: str):
        from orca_math.judge.serve_judge import judge_handle

        super().__init__(parts, "id")
        self.sampler = HostedSampler(lease, decoding, model)
        self.template, self.model = prompt_template, model
        self.handle = judge_handle(app_name)

    def _judge(self, items: list[dict]) -> list[dict]:
        from orca_math.judge.serve_judge import judge_batch_via_handle

        return judge_batch_via_handle(self.handle, items)

    def process(self, problems: list[dict]) -> tuple[StageOutput, dict[str, int]]:
        samples = sample_problems(self.sampler, problems, self.template)
        scored = score_samples(problems, samples, self.model, judge=self._judge)
        return scored, {"correct": sum(r["correct"] for r in scored.rows),
                        "no_answer": sum(r["extracted_answer"] is None for r in scored.rows),
                        "completion_tokens": sum(r["completion_tokens"] or 0 for r in scored.rows)}


def eval_stage(cfg: EvalConfig, out_dir: str | Path, *, model: str | Path, name: str = "eval",
               serve_cfg: JudgeServeConfig | None = None, teacher_cfg: TeacherConfig | None = None) -> Stage:
    """Evaluate ``model``; write ``results.parquet/``, ``quarantine.parquet/``, ``summary.json``.

    The eval set is read and checked once (``problems.parquet``; rows that cannot be problems are
    quarantined), then streams: each batch is sampled, judged by the judge app with ``cfg.judge``
    (started here if it is not running; ``teacher_cfg`` for the llm methods) and committed; a
    rerun after a crash evaluates only the problems not yet committed. ``summary.json`` holds
    the summary (accuracy, n, model, data hash, wall time, ...).
    """
    model, data = str(model), resolve_data_spec(cfg.data)

    def evaluate(c: StageContext) -> dict:
        from orca_math.common.ray_runtime import ensure_ray
        from orca_math.judge.serve_judge import ensure_judge_app

        started = time.perf_counter()
        parts = StageParts(c.out, "results.parquet", EVAL_RESULT)
        # Read and checked once, whatever its format (JSONL, Parquet, a HF dataset), streamed into
        # problems.parquet a chunk at a time; its read quarantine is a part of its own.
        problems_path = c.out / "problems.parquet"
        n, read = write_problems(data, problems_path, limit=cfg.limit, stage=c.name)
        parts.commit([], StageOutput([], read.quarantined, len(read.quarantined)), key="read")
        hashed = data_hash(pq.read_table(problems_path, columns=["id", "reference_answer"]).to_pylist())
        log.info("%s: %d problems from %s", c.name, n, data)
        ensure_ray()
        judge: list[str] = []
        lease = lease_engines(cfg.engine.model_copy(update={"model": model}),
                              meanwhile=lambda: judge.append(ensure_judge_app(cfg.judge, serve_cfg, teacher_cfg)))
        app = judge[0]
        engine = lease.engine
        result = stream_stage(
            problems_path, parts, EvalBatches,
            {"lease": lease, "decoding": cfg.decoding,
             "prompt_template": cfg.prompt_template, "model": model, "app_name": app},
            batch_size=engine.batch_size, concurrency=engine.concurrency, num_cpus=0,  # the hosts hold the engines
            tasks_per_actor=1)  # a batch is an engine's whole attention: queue none behind it, the next free engine takes it
        s = result.summary
        summary = {
            "stage": c.name,
            "model": model,
            "data": data,
            "data_hash": hashed,
            "n": n,
            "correct": s.stats["correct"],
            "accuracy": s.stats["correct"] / n if n else 0.0,  # quarantined problems count as wrong
            "no_answer": s.stats["no_answer"],
            "judge_method": cfg.judge.method,
            "rows_quarantined": s.rows_quarantined,
            "completion_tokens": s.stats["completion_tokens"],
            "rows_restored": result.rows_restored,
            "rows_computed": result.rows_computed,
            "row_unit": "problems",
            "wall_s": round(time.perf_counter() - started, 3),
        }
        (c.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return {"engine": engine.choice_record(),
                "outputs": {"results": str(parts.data_dir), "quarantine": str(parts.quarantine_dir),
                            "summary": str(c.out / "summary.json")},
                "accuracy": summary["accuracy"], **result.manifest_fields("problems")}

    # The eval set as named (gsm8k-test), not where this machine keeps it: a run folder moved to
    # another machine keeps its evals.
    return Stage(name, cfg, evaluate, out=Path(out_dir), inputs={"model": model, "data": cfg.data})


def run_eval(model: str | Path, cfg: EvalConfig, out_dir: str | Path, serve_cfg: JudgeServeConfig | None = None,
             teacher_cfg: TeacherConfig | None = None) -> dict:
    """:func:`eval_stage` on its own (manifest in ``out_dir``); returns its ``summary.json``."""
    try:
        run_stage(eval_stage(cfg, out_dir, model=model, serve_cfg=serve_cfg, teacher_cfg=teacher_cfg))
    finally:
        release_engines()
    return json.loads((Path(out_dir) / "summary.json").read_text())
