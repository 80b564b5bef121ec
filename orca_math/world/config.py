"""The procedural world's config: how problems are drawn."""

from __future__ import annotations

from pydantic import Field, model_validator

from orca_math.common.config import StageConfig
from orca_math.world.steps import KINDS


class WorldConfig(StageConfig):
    """The procedural world: how problems are drawn. Defaults suit a tiny student on a CPU."""

    min_steps: int = Field(1, ge=1, le=8, description="Fewest arithmetic steps in a problem.")
    max_steps: int = Field(4, ge=1, le=8, description="Most arithmetic steps in a problem.")
    max_value: int = Field(1000, ge=10, description="No quantity (given, intermediate or answer) exceeds this.")
    distractor_rate: float = Field(0.15, ge=0, le=1, description="Share of problems given one irrelevant sentence.")
    kinds: list[str] | None = Field(None, description="Step kinds allowed (default: all, see world/steps.py).")
    n_train: int = Field(20000, ge=1, description="Training problems (seeds for the teacher, or SFT data).")
    n_test: int = Field(500, ge=1, description="Held-out problems for evaluation.")
    seed: int = Field(0, ge=0, lt=10**8, description="Seed; the same seed gives the same problems.")

    @model_validator(mode="after")
    def _check(self) -> "WorldConfig":
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) > max_steps ({self.max_steps})")
        unknown = sorted(set(self.kinds or ()) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown step kinds {unknown}; known: {sorted(KINDS)}")
        return self
