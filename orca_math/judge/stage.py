"""The judge stage: every practice sample judged against its problem's teacher answer.

Samples stream through Ray Data to the judge deployment by Serve handle (no HTTP), in batches that
are committed as they finish (a rerun judges only what is missing); the deployment autoscales with
the load. A sample the judge could not decide (teacher error,
unparseable verdict) is quarantined with the reason, never marked right or wrong.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orca_math.common.records import StageOutput, read_table
from orca_math.common.runner import Stage, StageContext, run_stage
from orca_math.common.schema import JUDGMENT, PROBLEM
from orca_math.common.streaming import CommitBatches, StageParts, stream_stage
from orca_math.judge.config import JudgeConfig, JudgeServeConfig
from orca_math.judge.core import judge_requests, judgments_from_verdicts
from orca_math.teacher.config import TeacherConfig

log = logging.getLogger(__name__)


def problems_by_id(problems_path: str | Path) -> dict[str, dict]:
    """id -> {question, reference_answer} for every problem (loaded by each judging worker)."""
    t = read_table(problems_path, PROBLEM).select(["id", "question", "reference_answer"])
    return {pid: {"question": q, "reference_answer": a} for pid, q, a in zip(*(c.to_pylist() for c in t.columns))}


class JudgeBatches(CommitBatches):
    """``map_batches`` callable: a batch of samples -> judgments from the judge app, committed."""

    def __init__(self, parts: StageParts, problems_path: str, app_name: str):
        from orca_math.judge.serve_judge import judge_handle

        super().__init__(parts, "sample_id")
        self.problems = problems_by_id(problems_path)
        self.handle = judge_handle(app_name)

    def process(self, samples: list[dict]) -> tuple[StageOutput, dict[str, int]]:
        from orca_math.judge.serve_judge import judge_batch_via_handle

        reqs = judge_requests(samples, self.problems)
        verdicts = judge_batch_via_handle(self.handle, reqs.rows) if reqs.rows else []
        judged = judgments_from_verdicts(reqs.rows, verdicts)
        out = StageOutput(judged.rows, reqs.quarantined + judged.quarantined, len(samples))
        return out, {"correct": sum(j["correct"] for j in judged.rows),
                     "teacher_prompt_tokens": sum(v["prompt_tokens"] for v in verdicts),
                     "teacher_completion_tokens": sum(v["completion_tokens"] for v in verdicts)}


def judge_stage(judge_cfg: JudgeConfig, out_dir: str | Path, *, samples: str | Path, problems: str | Path,
                serve_cfg: JudgeServeConfig, teacher_cfg: TeacherConfig | None = None, name: str = "judge",
                batch_size: int = 256, concurrency: int = 2) -> Stage:
    """Judge every sample into ``judgments.parquet/`` (+ ``quarantine.parquet/``). Starts the judge app if needed.

    Streams: samples are read by Ray Data and judged in batches, each batch committed as one
    part; a rerun after a crash judges only the samples not yet committed.
    """
    samples_path, problems_path = str(samples), str(problems)

    def judge(c: StageContext) -> dict:
        from orca_math.common.ray_runtime import ensure_ray
        from orca_math.judge.serve_judge import ensure_judge_app

        ensure_ray()
        app = ensure_judge_app(judge_cfg, serve_cfg, teacher_cfg)
        parts = StageParts(c.out, "judgments.parquet", JUDGMENT)
        result = stream_stage(samples_path, parts, JudgeBatches, {"problems_path": problems_path, "app_name": app},
                              batch_size=batch_size, concurrency=concurrency, num_cpus=0)  # the replicas work
        stats = result.summary.stats
        log.info("%s: %d samples judged, %d correct, %d quarantined (%d restored, %d computed)", c.name,
                 result.summary.rows_out, stats["correct"], result.summary.rows_quarantined,
                 result.rows_restored, result.rows_computed)
        return {"outputs": {"judgments": str(parts.data_dir), "quarantine": str(parts.quarantine_dir)},
                "correct": stats["correct"], **result.manifest_fields("samples"),
                "teacher_tokens": {"prompt": stats["teacher_prompt_tokens"],
                                   "completion": stats["teacher_completion_tokens"]}}

    return Stage(name, judge_cfg, judge, out=Path(out_dir), inputs={"samples": samples_path, "problems": problems_path})


def run_judge(samples_path: str | Path, problems_path: str | Path, out_dir: str | Path, judge_cfg: JudgeConfig,
              serve_cfg: JudgeServeConfig, teacher_cfg: TeacherConfig | None = None, batch_size: int = 256,
              concurrency: int = 2) -> Path:
    """:func:`judge_stage` on its own (manifest in ``out_dir``); returns the judgments folder."""
    run_stage(judge_stage(judge_cfg, out_dir, samples=samples_path, problems=problems_path, serve_cfg=serve_cfg,
                          teacher_cfg=teacher_cfg, batch_size=batch_size, concurrency=concurrency))
    return Path(out_dir) / "judgments.parquet"
