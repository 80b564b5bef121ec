"""``orca-math eval``: GSM8K pass@1 of a model."""

from __future__ import annotations

import argparse

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.evaluate.config import EvalConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="greedy pass@1 of a model on a problem set (vLLM on Ray Data)")
    p.add_argument("--model", required=True, help="HF id or local model folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", default=None, help="YAML config with an `eval:` section (e.g. configs/tiny.yaml)")
    add_config_flags(p, "eval", EvalConfig, ["data", "limit"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orca_math.evaluate.stage import run_eval
    from orca_math.judge.config import JudgeConfig
    from orca_math.judge.serve_judge import release_judge
    from orca_math.serve.config import ServeConfig
    from orca_math.teacher.config import TeacherConfig

    config = config_from_args(args)
    # The config's judge (and, for the llm methods, its teacher) judges the eval, as in the recipe.
    judge = load_stage_config(JudgeConfig, config, "judge")
    cfg = load_stage_config(EvalConfig, config, "eval").model_copy(update={"judge": judge})
    serve_cfg = load_stage_config(ServeConfig, config, "serve").judge
    teacher = load_stage_config(TeacherConfig, config, "teacher") if judge.method != "exact" else None
    try:
        s = run_eval(args.model, cfg, args.out, serve_cfg=serve_cfg, teacher_cfg=teacher)
    finally:
        release_judge()  # a one-off command leaves no judge replicas holding CPUs
    print(f"eval {s['model']} on {s['data']}: pass@1 = {s['accuracy']:.4f} ({s['correct']}/{s['n']}), "
          f"no answer {s['no_answer']}, {s['wall_s']:.1f}s -> {args.out}/summary.json")
    return 0
