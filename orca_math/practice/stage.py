"""Practice sampling: N solutions per problem from the current student M_k, every one kept."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field

from orca_math.config import StageConfig
from orca_math.manifest import RunManifest
from orca_math.prompts import DEFAULT_PROMPT_TEMPLATE, prompt_rows
from orca_math.records import StageOutput, quarantine_row, read_parquet, write_parquet, write_quarantine
from orca_math.sampling.config import DecodingConfig, VLLMEngineConfig
from orca_math.schema import PROBLEM, SAMPLE

log = logging.getLogger(__name__)


class PracticeConfig(StageConfig):
    """Student practice. Defaults are the paper's: 4 samples, temperature 0.7, top_p 0.95."""

    prompt_template: str = Field(DEFAULT_PROMPT_TEMPLATE, description="Same format as SFT and eval.")
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    engine: VLLMEngineConfig = Field(default_factory=VLLMEngineConfig)
    offset: int = Field(0, ge=0, description="Skip the first N problems (a run moves it on each round).")
    limit: int | None = Field(None, ge=1, description="Practice on N problems only (after the offset).")


def practice_slice(problems: list[dict], offset: int, limit: int | None) -> list[dict]:
    """``limit`` problems from ``offset`` on, wrapping around to the start when the set runs out."""
    if not problems:
        return []
    n = len(problems) if limit is None else min(limit, len(problems))
    start = offset % len(problems)
    return (problems[start:] + problems[:start])[:n]


def check_samples(problems: list[dict], samples: list[dict], n: int) -> StageOutput:
    """Keep every sample of a known problem; quarantine empty ones. Rows in = samples returned.

    A problem that came back with fewer than ``n`` samples is logged, not padded: the judge and
    the preference builder work per sample.
    """
    known = {p["id"] for p in problems}
    out = StageOutput(rows_in=len(samples))
    per_problem: dict[str, int] = {}
    for i, s in enumerate(samples):
        if s["problem_id"] not in known:
            out.quarantined.append(quarantine_row("practice", "vllm", i, "problem_id", "unknown problem", s))
        elif not s["text"].strip():
            out.quarantined.append(quarantine_row("practice", "vllm", i, "text", "empty completion", s))
        else:
            out.rows.append(s)
            per_problem[s["problem_id"]] = per_problem.get(s["problem_id"], 0) + 1
    short = [pid for pid in known if per_problem.get(pid, 0) < n]
    if short:
        log.warning("practice: %d problems have fewer than %d usable samples", len(short), n)
    return out.check_counts()


def run_practice(model: str, problems_path: str | Path, out_dir: str | Path, cfg: PracticeConfig,
                 stage: str = "practice", manifest: RunManifest | None = None, model_name: str | None = None) -> Path:
    """Sample ``cfg.decoding.n`` solutions per problem; write ``samples.parquet`` (+ quarantine).

    ``model_name`` (default: ``model``) goes into each sample's id and ``model`` column; a run
    passes its label (``M1``) so ids do not depend on where the run folder lives.
    """
    from orca_math.ray_runtime import ensure_ray
    from orca_math.sampling.ray_sampling import sample_rows

    out_dir = Path(out_dir)
    manifest = manifest or RunManifest(out_dir / "manifest.json")
    engine = cfg.engine.model_copy(update={"model": model})
    with manifest.stage(stage, cfg, {"model": str(model), "problems": str(problems_path)}) as entry:
        problems = read_parquet(problems_path, PROBLEM)
        problems = practice_slice(problems, cfg.offset, cfg.limit)
        ensure_ray()
        log.info("%s: %d problems x %d samples from %s", stage, len(problems), cfg.decoding.n, model)
        samples = sample_rows(prompt_rows(problems, cfg.prompt_template), engine, cfg.decoding,
                              model_name=model_name or str(model))
        checked = check_samples(problems, samples, cfg.decoding.n)
        path = write_parquet(sorted(checked.rows, key=lambda s: (s["problem_id"], s["sample_index"])),
                             SAMPLE, out_dir / "samples.parquet")
        write_quarantine(checked.quarantined, out_dir / "quarantine.parquet")
        entry.update(outputs={"samples": str(path)}, problems=len(problems), engine=engine.choice_record(),
                     **checked.counts())
    return path
