"""``orca-math run``: the whole recipe (``run/recipe.py``), every stage's section of one config."""

from __future__ import annotations

import argparse

from orca_math.common.config import add_config_flags, config_from_args
from orca_math.evaluate.config import EvalConfig
from orca_math.generate.config import GenerateConfig, SolveStageConfig
from orca_math.judge.config import JudgeConfig
from orca_math.practice.config import PracticeConfig
from orca_math.prefs.config import PreferenceConfig
from orca_math.run.config import RunConfig
from orca_math.serve.config import ServeConfig
from orca_math.teacher.config import ProceduralTeacherConfig, TeacherConfig
from orca_math.tiny_model.config import TinyModelConfig
from orca_math.train.config import CONFIG_CLASSES, TrainConfigBase
from orca_math.world.config import WorldConfig

# The sections `orca-math run` reads (StageConfigs), for `--set SECTION.KEY=VALUE`.
RUN_SECTIONS = {
    "run": RunConfig, "tiny_model": TinyModelConfig, "world": WorldConfig,
    "teacher": TeacherConfig | ProceduralTeacherConfig, "generate": GenerateConfig, "solve": SolveStageConfig,
    "train": TrainConfigBase, **CONFIG_CLASSES, "eval": EvalConfig, "practice": PracticeConfig,
    "judge": JudgeConfig, "serve": ServeConfig, "prefs": PreferenceConfig,
}


def add_run_config_flags(p: argparse.ArgumentParser) -> None:
    """``--set`` for every section of a run's config (``orca-math run``, ``orca-math demo``)."""
    for section, cls in RUN_SECTIONS.items():
        add_config_flags(p, section, cls)


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the whole recipe, resumable: rerun the same command to resume")
    p.add_argument("--config", required=True, help="YAML config (e.g. configs/tiny.yaml, configs/orca_math_mistral7b.yaml)")
    p.add_argument("--out", required=True, help="run folder (RUN_DIR)")
    add_run_config_flags(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from orca_math.run.recipe import run_pipeline

    run_pipeline(config_from_args(args), args.out)
    return 0
