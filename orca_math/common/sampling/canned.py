"""A stand-in for the vLLM engine (``engine.kind: canned``): deterministic canned completions.

For benchmarks and tests of the data path only: no model is loaded and a batch costs next to
nothing, so what is measured is reading, batching, judging and writing. Each completion depends
on (seed, problem id, sample index) alone, like the real sampler's per-problem seeds: which batch
a problem lands in changes nothing. About half the samples reach the reference answer (when the
batch carries ``reference_answer``); a prompt with an empty question gets an empty completion.
"""

from __future__ import annotations

import time
from typing import Any

from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig
from orca_math.common.schema import stable_id


def canned_completion(seed: int, problem_id: str, index: int, question: str, reference: str | None) -> str:
    """The canned text for one sample: worked 'steps' and a GSM8K-style final answer line."""
    if not question.strip():
        return ""
    h = int(stable_id("canned", seed, problem_id, index), 16)
    # Wrong answers are 7-digit numbers: no word problem here has one for an answer.
    answer = reference if reference is not None and h % 2 == 0 else str(1_000_003 + h % 1000)
    return f"Let me work through it step by step ({h % 97} steps).\n#### {answer}"


class CannedSampler:
    """Callable class like ``VLLMSampler``: columns ``problem_id``, ``prompt`` (+ ``question``,
    ``reference_answer``) -> sample-schema columns, ``decoding.n`` rows per prompt."""

    def __init__(self, engine: VLLMEngineConfig, decoding: DecodingConfig, model_name: str | None = None):
        self.seed = engine.seed if decoding.seed is None else decoding.seed
        self.n = decoding.n
        self.model_name = model_name or str(engine.model)
        self.delay_s = engine.canned_delay_s

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        if self.delay_s:
            time.sleep(self.delay_s)
        cols: dict[str, list] = {k: [] for k in (
            "sample_id", "problem_id", "model", "sample_index", "prompt", "text",
            "prompt_tokens", "completion_tokens", "finish_reason")}
        n_rows = len(batch["problem_id"])
        questions = batch.get("question") or [str(p) for p in batch["prompt"]]
        references = batch.get("reference_answer") or [None] * n_rows
        for pid, prompt, question, ref in zip(batch["problem_id"], batch["prompt"], questions, references):
            for i in range(self.n):
                text = canned_completion(self.seed, str(pid), i, str(question), ref)
                cols["sample_id"].append(stable_id(self.model_name, pid, i))
                cols["problem_id"].append(str(pid))
                cols["model"].append(self.model_name)
                cols["sample_index"].append(i)
                cols["prompt"].append(str(prompt))
                cols["text"].append(text)
                cols["prompt_tokens"].append(len(str(prompt).split()))
                cols["completion_tokens"].append(len(text.split()))
                cols["finish_reason"].append("stop")
        return cols
