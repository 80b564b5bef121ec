"""Evaluation: greedy pass@1 of a model on a problem set, as pure functions over records."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field

from orca_math.answers import extract_answer, is_correct
from orca_math.config import StageConfig
from orca_math.prompts import DEFAULT_PROMPT_TEMPLATE
from orca_math.records import StageOutput, quarantine_row
from orca_math.sampling.config import GREEDY, DecodingConfig, VLLMEngineConfig


class EvalConfig(StageConfig):
    """Pass@1 evaluation. Defaults: the paper's GSM8K test protocol (greedy, full 1,319 problems)."""

    data: str = Field("gsm8k-test", description="gsm8k-test, a JSONL/Parquet path, or hf:ID[:CONFIG]:SPLIT.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N problems.")
    prompt_template: str = Field(DEFAULT_PROMPT_TEMPLATE, description="Must contain {question}.")
    decoding: DecodingConfig = Field(GREEDY, description="Greedy, one sample: pass@1.")
    engine: VLLMEngineConfig = Field(default_factory=VLLMEngineConfig)
    judge_method: Literal["exact"] = Field("exact", description="How completions are scored.")


def data_hash(problems: list[dict]) -> str:
    """Hash of the evaluated set (ids and answers), so results name exactly what they measured."""
    h = hashlib.sha256()
    for p in sorted(problems, key=lambda p: p["id"]):
        h.update(f"{p['id']}\x1f{p['reference_answer']}\n".encode())
    return h.hexdigest()[:16]


def score_samples(problems: list[dict], samples: list[dict], model: str) -> StageOutput:
    """Eval-result rows: each problem's first sample checked against its reference answer.

    A problem without a sample (the engine dropped it) is quarantined, never counted as right
    or silently left out of the denominator.
    """
    by_problem: dict[str, dict] = {}
    for s in sorted(samples, key=lambda s: s["sample_index"]):
        by_problem.setdefault(s["problem_id"], s)
    out = StageOutput(rows_in=len(problems))
    for i, p in enumerate(problems):
        s = by_problem.get(p["id"])
        if s is None:
            out.quarantined.append(quarantine_row("eval", p["source"], i, "completion", "no sample returned", p))
            continue
        out.rows.append({
            "problem_id": p["id"],
            "model": model,
            "question": p["question"],
            "reference_answer": p["reference_answer"],
            "completion": s["text"],
            "extracted_answer": extract_answer(s["text"]),
            "correct": is_correct(s["text"], p["reference_answer"]),
            "method": "exact",
            "completion_tokens": s.get("completion_tokens"),
        })
    return out.check_counts()


def accuracy(results: list[dict], n_total: int | None = None) -> float:
    """Pass@1 over ``n_total`` problems (quarantined ones count as wrong)."""
    n = n_total if n_total is not None else len(results)
    return sum(r["correct"] for r in results) / n if n else 0.0
