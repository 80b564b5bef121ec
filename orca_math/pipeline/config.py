"""The ``run:`` section: which stages the recipe runs, on what, for how many rounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orca_math.config import StageConfig


class RunConfig(StageConfig):
    """The whole Orca-Math recipe. Defaults are the paper's: Mistral-7B student, AgentInstruct data
    from GSM8K-style seeds, SFT, then 2 practice rounds with KTO."""

    student: str = Field("mistralai/Mistral-7B-v0.1", description="Base model M0 (HF id or folder); 'tiny' builds one.")
    seeds: str = Field("gsm8k-train", description="Seed problems for AgentInstruct (or the SFT set when generate is off).")
    seed_limit: int | None = Field(None, ge=1, description="Use only the first N seeds.")
    problems: str | None = Field(None, description="Use this problem set instead of generating one (Parquet/JSONL).")
    generate: bool = Field(True, description="Run AgentInstruct on the seeds (off: train on the seeds/problems as given).")
    solve: bool = Field(False, description="Have the teacher re-solve the problem set (keep only where it matches gold).")
    rounds: int = Field(2, ge=0, description="Practice-and-feedback rounds after SFT.")
    preference_algo: Literal["kto", "dpo", "rft"] = Field(
        "kto", description="What each round trains (paper's best: KTO): kto, dpo, or rft (rejection-sampling "
        "fine-tuning: SFT on the round's positives, i.e. the student's correct samples and the teacher's "
        "solution; its settings are the `rft:` section).",
    )
    practice_limit: int | None = Field(None, ge=1, description="Problems practiced per round (None: the whole SFT set).")
    practice_fresh: bool = Field(
        False, description="Each round practices the next practice_limit problems (round k starts at "
        "(k-1) x practice_limit, wrapping), not the same first ones again.",
    )
    eval_base: bool = Field(False, description="Also evaluate M0 before SFT.")
    world: bool = Field(
        False, description="Run on the procedural world (the `world:` section) instead of `seeds`: its train "
        "problems are the seeds, its held-out test problems replace `eval.data`.",
    )
    sft_control: bool = Field(
        False, description="Also train M1 further with plain SFT on as many training sequences as the practice "
        "rounds' training used, and evaluate it like M2..: the equal-compute control for practice.",
    )
    seed: int | None = Field(
        None, ge=0, description="One seed for the whole run: when set, it replaces the world's, the teacher's, the "
        "tiny model's init, every trainer's data order and the practice sampling seeds (so a second seed is a "
        "second, independent run of the same config). None: each section keeps its own.",
    )

    @model_validator(mode="after")
    def _problems_or_seeds(self) -> "RunConfig":
        if self.problems and self.generate:
            raise ValueError("give either `problems` (use them as they are) or `generate: true`, not both")
        return self


class SeedsStageConfig(StageConfig):
    """What the ``seeds`` stage's output depends on: only these parts of ``run:`` (so changing, say,
    ``rounds`` or ``practice_limit`` does not redo the seeds and, through the chain, SFT)."""

    seeds: str = Field(..., description="Seed problems (or the SFT set when generate is off).")
    seed_limit: int | None = Field(None, description="Use only the first N seeds.")
    problems: str | None = Field(None, description="A problem set used as it is, instead of the seeds.")

    @classmethod
    def of(cls, run: RunConfig) -> "SeedsStageConfig":
        return cls(seeds=run.seeds, seed_limit=run.seed_limit, problems=run.problems)
