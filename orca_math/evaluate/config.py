"""The eval config (``eval:``): what a model is evaluated on, and how its completions are sampled and judged."""

from __future__ import annotations

from pydantic import Field

from orca_math.common.config import StageConfig
from orca_math.common.prompts import DEFAULT_PROMPT_TEMPLATE
from orca_math.common.sampling.config import GREEDY, DecodingConfig, VLLMEngineConfig
from orca_math.judge.config import JudgeConfig


class EvalConfig(StageConfig):
    """Pass@1 evaluation. Defaults: the paper's GSM8K test protocol (greedy, full 1,319 problems)."""

    data: str = Field("gsm8k-test", description="gsm8k-test, a JSONL/Parquet path, or hf:ID[:CONFIG]:SPLIT.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N problems.")
    prompt_template: str = Field(DEFAULT_PROMPT_TEMPLATE, description="Must contain {question}.")
    decoding: DecodingConfig = Field(GREEDY, description="Greedy, one sample: pass@1.")
    engine: VLLMEngineConfig = Field(default_factory=VLLMEngineConfig)
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig, description="How completions are judged: the judge service, as in practice "
        "(exact | llm | exact_then_llm). A run and `orca-math eval --config` use the config's `judge:` section.")
