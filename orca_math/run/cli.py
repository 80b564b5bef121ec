"""``orca-math run`` and the per-round stage commands ``practice``, ``judge``, ``prefs``."""

from __future__ import annotations

import argparse

from orca_math.generate.config import GenerateConfig, SolveStageConfig
from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.evaluate.config import EvalConfig
from orca_math.judge.config import JudgeConfig
from orca_math.run.config import RunConfig
from orca_math.practice.config import PracticeConfig
from orca_math.prefs.config import PreferenceConfig
from orca_math.serve.config import ServeConfig
from orca_math.teacher.config import TeacherConfig
from orca_math.tiny_model.core import TinyModelConfig
from orca_math.train.config import CONFIG_CLASSES, TrainConfigBase
from orca_math.world.generate import WorldConfig
from orca_math.teacher.config import ProceduralTeacherConfig

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

    p = sub.add_parser("practice", help="sample N solutions per problem from a student (vLLM on Ray Data)")
    p.add_argument("--model", required=True)
    p.add_argument("--problems", required=True, help="problem-schema Parquet file or folder")
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="YAML with a `practice:` section")
    add_config_flags(p, "practice", PracticeConfig, ["limit"])
    p.set_defaults(func=_practice)

    p = sub.add_parser("judge", help="judge practice samples against the teacher answers (Serve judge)")
    p.add_argument("--samples", required=True, help="sample-schema Parquet")
    p.add_argument("--problems", required=True, help="problem-schema Parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="YAML with `judge:`, `serve:` and (llm) `teacher:` sections")
    for section, cls in (("judge", JudgeConfig), ("serve", ServeConfig), ("teacher", TeacherConfig)):
        add_config_flags(p, section, cls)
    p.set_defaults(func=_judge)

    p = sub.add_parser("prefs", help="DPO pairs and KTO examples from judged samples")
    p.add_argument("--problems", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--judgments", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--round", type=int, default=1)
    p.add_argument("--config", default=None, help="YAML with a `prefs:` section")
    add_config_flags(p, "prefs", PreferenceConfig)
    p.set_defaults(func=_prefs)


def _run(args: argparse.Namespace) -> int:
    from orca_math.run.recipe import run_pipeline

    run_pipeline(config_from_args(args), args.out)
    return 0


def _practice(args: argparse.Namespace) -> int:
    from orca_math.practice.stage import run_practice

    cfg = load_stage_config(PracticeConfig, config_from_args(args), "practice")
    print(f"samples: {run_practice(args.model, args.problems, args.out, cfg)}")
    return 0


def _judge(args: argparse.Namespace) -> int:
    from orca_math.judge.stage import run_judge

    config = config_from_args(args)
    judge_cfg = load_stage_config(JudgeConfig, config, "judge")
    teacher = load_stage_config(TeacherConfig, config, "teacher") if judge_cfg.method != "exact" else None
    serve_cfg = load_stage_config(ServeConfig, config, "serve").judge
    try:
        print(f"judgments: {run_judge(args.samples, args.problems, args.out, judge_cfg, serve_cfg, teacher)}")
    finally:
        # A one-off command must not leave judge replicas holding cluster CPUs after it exits.
        from orca_math.judge.serve_judge import release_judge

        release_judge()
    return 0


def _prefs(args: argparse.Namespace) -> int:
    from orca_math.prefs.stage import run_prefs

    cfg = load_stage_config(PreferenceConfig, config_from_args(args), "prefs")
    paths = run_prefs(args.problems, args.samples, args.judgments, args.out, cfg, round_k=args.round)
    print(f"pairs: {paths['pairs']}\nkto: {paths['kto']}")
    return 0
