"""The recipe's configs: the ``run:`` section (which stages run, on what, for how many rounds) and
:class:`StageConfigs`, every stage's section of one YAML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from orca_math.common.config import ConfigError, StageConfig, load_stage_config
from orca_math.evaluate.config import EvalConfig
from orca_math.judge.config import JudgeConfig
from orca_math.practice.config import PracticeConfig
from orca_math.prefs.config import PreferenceConfig
from orca_math.teacher.config import TeacherConfig, load_teacher_config
from orca_math.tiny_model.config import TinyModelConfig


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
        "practice.offset + (k-1) x practice_limit, wrapping), not the same first ones again.",
    )
    eval_base: bool = Field(False, description="Also evaluate M0 before SFT.")
    world: bool = Field(
        False, description="Run on the procedural world (the `world:` section) instead of `seeds`: its train "
        "problems are the seeds, its held-out test problems replace `eval.data`.",
    )
    sft_control: bool = Field(
        False, description="Also train M1 further with plain SFT on as many training tokens (after DPO/KTO rounds: "
        "sequences) as the practice rounds' training used, and evaluate it like M2..: the equal-compute control.",
    )
    sft_control_data: Literal["set", "practiced"] = Field(
        "set", description="What the control trains on. set: the whole SFT set, in another order (the question "
        "a user with a budget asks: more SFT, or practice?). practiced: only the problems the rounds practiced, "
        "with the teacher's solutions, so the rounds' only edge is the student's own samples and the judge's "
        "verdicts (what feedback buys, apart from which problems were practiced).",
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


@dataclass
class StageConfigs:
    """Every stage's config, read from one YAML file."""

    run: RunConfig
    tiny_model: TinyModelConfig
    eval: EvalConfig
    sft: StageConfig
    practice: PracticeConfig
    judge: JudgeConfig
    serve: StageConfig
    teacher: StageConfig  # TeacherConfig, or the world's ProceduralTeacherConfig
    prefs: PreferenceConfig
    pref_train: StageConfig
    generate: StageConfig | None = None
    solve: StageConfig | None = None
    world: StageConfig | None = None

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "StageConfigs":
        from orca_math.serve.config import ServeConfig
        from orca_math.train.config import CONFIG_CLASSES, SFTTrainConfig

        run = load_stage_config(RunConfig, path, "run", overrides)
        pref_cls = CONFIG_CLASSES[run.preference_algo]
        cfgs = cls(
            run=run,
            tiny_model=load_stage_config(TinyModelConfig, path, "tiny_model"),
            eval=load_stage_config(EvalConfig, path, "eval"),
            sft=load_stage_config(SFTTrainConfig, path, "sft"),
            practice=load_stage_config(PracticeConfig, path, "practice"),
            judge=load_stage_config(JudgeConfig, path, "judge"),
            serve=load_stage_config(ServeConfig, path, "serve"),
            teacher=load_teacher_config(path),
            prefs=load_stage_config(PreferenceConfig, path, "prefs"),
            pref_train=load_stage_config(pref_cls, path, run.preference_algo),
        )
        if run.generate or run.solve:
            from orca_math.generate.config import GenerateConfig, SolveStageConfig

            cfgs.generate = load_stage_config(GenerateConfig, path, "generate")
            cfgs.solve = load_stage_config(SolveStageConfig, path, "solve")
        if run.world:
            from orca_math.world.config import WorldConfig

            cfgs.world = load_stage_config(WorldConfig, path, "world")
        # Evaluation is judged like practice: the run's judge section applies to both.
        cfgs.eval = cfgs.eval.model_copy(update={"judge": cfgs.judge})
        if run.seed is not None:
            cfgs.reseed(run.seed)
        if cfgs.judge.method != "exact" and not isinstance(cfgs.teacher, TeacherConfig):
            raise ConfigError(Path(path), "judge.method",
                              f"{cfgs.judge.method!r} asks the teacher endpoint; the procedural teacher has none: use exact")
        return cfgs

    def reseed(self, seed: int) -> None:
        """Give every seeded section ``seed``: the world, the teacher, the init, data order, sampling."""
        with_seed = lambda cfg: cfg.model_copy(update={"seed": seed}) if cfg is not None else None  # noqa: E731
        self.tiny_model, self.sft, self.pref_train, self.prefs = map(
            with_seed, (self.tiny_model, self.sft, self.pref_train, self.prefs))
        if self.world is not None:
            self.world = with_seed(self.world)
        if hasattr(self.teacher, "seed"):
            self.teacher = with_seed(self.teacher)
        if self.generate is not None and hasattr(self.generate.teacher, "seed"):
            self.generate = self.generate.model_copy(update={"teacher": with_seed(self.generate.teacher)})
        self.practice = self.practice.model_copy(
            update={"decoding": self.practice.decoding.model_copy(update={"seed": seed})})
