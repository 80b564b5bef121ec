"""The judge stage: every practice sample judged against its problem's teacher answer.

Samples flow through Ray Data to the judge deployment by Serve handle (no HTTP), in batches; the
deployment autoscales with the load. A sample the judge could not decide (teacher error,
unparseable verdict) is quarantined with the reason, never marked right or wrong.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from orca_math.judge.config import JudgeConfig, JudgeServeConfig
from orca_math.manifest import RunManifest
from orca_math.records import StageOutput, quarantine_row, read_parquet, write_parquet, write_quarantine
from orca_math.schema import JUDGMENT, PROBLEM, SAMPLE
from orca_math.teacher.config import TeacherConfig

log = logging.getLogger(__name__)


def judge_requests(samples: list[dict], problems: list[dict]) -> StageOutput:
    """Samples -> rows carrying what the judge needs; samples of unknown problems are quarantined."""
    by_id = {p["id"]: p for p in problems}
    out = StageOutput(rows_in=len(samples))
    for i, s in enumerate(samples):
        p = by_id.get(s["problem_id"])
        if p is None:
            out.quarantined.append(quarantine_row("judge", "samples", i, "problem_id", "unknown problem", s))
            continue
        out.rows.append({"sample_id": s["sample_id"], "problem_id": s["problem_id"], "question": p["question"],
                         "reference": p["reference_answer"], "candidate": s["text"]})
    return out.check_counts()


def judgments_from_verdicts(requests: list[dict], verdicts: list[dict]) -> StageOutput:
    """Judgment rows, one per decided request; undecided ones are quarantined with the judge's error."""
    if len(requests) != len(verdicts):
        raise ValueError(f"{len(requests)} requests but {len(verdicts)} verdicts")
    out = StageOutput(rows_in=len(requests))
    for i, (r, v) in enumerate(zip(requests, verdicts)):
        if v.get("error") is not None or v.get("correct") is None:
            out.quarantined.append(quarantine_row("judge", "judge", i, "correct", f"not judged: {v.get('error')}", r))
            continue
        out.rows.append({"sample_id": r["sample_id"], "problem_id": r["problem_id"], "correct": bool(v["correct"]),
                         "method": v["method"], "extracted_answer": v.get("extracted")})
    return out.check_counts()


class JudgeViaHandle:
    """``map_batches`` callable: judge rows through the running judge app by Serve handle, no HTTP.

        ds.map_batches(JudgeViaHandle, fn_constructor_kwargs={"app_name": JUDGE_APP}, batch_size=256)

    Reads the ``question``, ``reference`` and ``candidate`` columns and returns every column plus
    the verdict's: ``correct`` (None when not judged), ``method``, ``extracted``, ``error``,
    ``prompt_tokens`` and ``completion_tokens``.
    """

    def __init__(self, app_name: str):
        from orca_math.judge.serve_judge import judge_handle

        self.handle = judge_handle(app_name)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from orca_math.judge.serve_judge import judge_batch_via_handle

        items = [{"question": q, "reference": r, "candidate": c}
                 for q, r, c in zip(batch["question"], batch["reference"], batch["candidate"])]
        verdicts = judge_batch_via_handle(self.handle, items)
        out = {k: list(v) for k, v in batch.items()}
        for key in ("correct", "method", "extracted", "error", "prompt_tokens", "completion_tokens"):
            out[key] = [v[key] for v in verdicts]
        return out


def judge_with_ray_data(requests: list[dict], app_name: str, batch_size: int = 256, concurrency: int = 2) -> list[dict]:
    """Send requests through Ray Data to the judge app; verdict rows come back in request order."""
    import ray.data

    if not requests:
        return []
    rows = ray.data.from_items(requests).map_batches(
        JudgeViaHandle, fn_constructor_kwargs={"app_name": app_name},
        batch_size=batch_size, concurrency=concurrency, num_cpus=0,  # the replicas do the work
    ).take_all()
    by_sample = {r["sample_id"]: r for r in rows}
    return [by_sample[r["sample_id"]] for r in requests]


def run_judge(samples_path: str | Path, problems_path: str | Path, out_dir: str | Path, judge_cfg: JudgeConfig,
              serve_cfg: JudgeServeConfig, teacher_cfg: TeacherConfig | None = None, stage: str = "judge",
              manifest: RunManifest | None = None) -> Path:
    """Judge every sample; write ``judgments.parquet`` (+ quarantine). Starts the judge app if needed."""
    from ray import serve

    from orca_math.judge.serve_judge import JUDGE_APP, start_judge
    from orca_math.ray_runtime import ensure_ray

    out_dir = Path(out_dir)
    manifest = manifest or RunManifest(out_dir / "manifest.json")
    inputs = {"samples": str(samples_path), "problems": str(problems_path)}
    with manifest.stage(stage, judge_cfg, inputs) as entry:
        samples = read_parquet(samples_path, SAMPLE)
        reqs = judge_requests(samples, read_parquet(problems_path, PROBLEM))
        ensure_ray()
        if JUDGE_APP not in serve.status().applications:
            start_judge(judge_cfg, serve_cfg, teacher_cfg)
        verdict_rows = judge_with_ray_data(reqs.rows, JUDGE_APP)
        judged = judgments_from_verdicts(reqs.rows, verdict_rows)
        path = write_parquet(judged.rows, JUDGMENT, out_dir / "judgments.parquet")
        write_quarantine(reqs.quarantined + judged.quarantined, out_dir / "quarantine.parquet")
        correct = sum(j["correct"] for j in judged.rows)
        log.info("%s: %d samples judged, %d correct, %d quarantined", stage, len(judged.rows), correct,
                 len(reqs.quarantined) + len(judged.quarantined))
        entry.update(
            outputs={"judgments": str(path)}, rows_in=len(samples), rows_out=len(judged.rows),
            rows_quarantined=len(reqs.quarantined) + len(judged.quarantined),
            quarantine_reasons={**reqs.reasons(), **judged.reasons()}, correct=correct,
            teacher_tokens={"prompt": sum(r["prompt_tokens"] for r in verdict_rows),
                            "completion": sum(r["completion_tokens"] for r in verdict_rows)},
        )
    return path
