"""The practice config (``practice:``): how the student samples its solutions each round."""

from __future__ import annotations

from pydantic import Field

from orca_math.common.config import StageConfig
from orca_math.common.prompts import DEFAULT_PROMPT_TEMPLATE
from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig


class PracticeConfig(StageConfig):
    """Student practice. Defaults are the paper's: 4 samples, temperature 0.7, top_p 0.95."""

    prompt_template: str = Field(DEFAULT_PROMPT_TEMPLATE, description="Same format as SFT and eval.")
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    engine: VLLMEngineConfig = Field(default_factory=VLLMEngineConfig)
    offset: int = Field(0, ge=0, description="Skip the first N problems (with run.practice_fresh, round k adds (k-1) x limit).")
    limit: int | None = Field(None, ge=1, description="Practice on N problems only (after the offset).")
