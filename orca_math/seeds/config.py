"""The seeds stage's config."""

from __future__ import annotations

from pydantic import Field

from orca_math.common.config import StageConfig


class SeedsConfig(StageConfig):
    """What the seeds stage reads: only these parts of ``run:`` (so changing, say, ``rounds`` or
    ``practice_limit`` does not redo the seeds and, through the chain, SFT)."""

    seeds: str = Field(..., description="Seed problems (or the SFT set when generate is off).")
    seed_limit: int | None = Field(None, description="Use only the first N seeds.")
    problems: str | None = Field(None, description="A problem set used as it is, instead of the seeds.")
