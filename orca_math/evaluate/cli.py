"""``orca-math eval``: GSM8K pass@1 of a model."""

from __future__ import annotations

import argparse

from orca_math.config import load_stage_config
from orca_math.evaluate.stage import EvalConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="greedy pass@1 of a model on a problem set (vLLM on Ray Data)")
    p.add_argument("--model", required=True, help="HF id or local model folder")
    p.add_argument("--data", default=None, help="gsm8k-test (default), a JSONL/Parquet path, or hf:ID[:CONFIG]:SPLIT")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N problems")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", default=None, help="YAML config with an `eval:` section (e.g. configs/tiny.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orca_math.evaluate.run import run_eval
    from orca_math.judge.config import JudgeConfig
    from orca_math.judge.serve_judge import release_judge

    cfg = load_stage_config(EvalConfig, args.config, "eval", {"data": args.data, "limit": args.limit})
    serve_cfg = teacher = None
    if args.config:  # the config's judge (and, for the llm methods, its teacher) judges the eval too
        from orca_math.serve_cli import ServeConfig
        from orca_math.teacher.config import TeacherConfig

        cfg = cfg.model_copy(update={"judge": load_stage_config(JudgeConfig, args.config, "judge")})
        serve_cfg = load_stage_config(ServeConfig, args.config, "serve").judge
        if cfg.judge.method != "exact":
            teacher = load_stage_config(TeacherConfig, args.config, "teacher")
    try:
        s = run_eval(args.model, cfg, args.out, serve_cfg=serve_cfg, teacher_cfg=teacher)
    finally:
        release_judge()  # a one-off command leaves no judge replicas holding CPUs
    print(f"eval {s['model']} on {s['data']}: pass@1 = {s['accuracy']:.4f} ({s['correct']}/{s['n']}), "
          f"no answer {s['no_answer']}, {s['wall_s']:.1f}s -> {args.out}/summary.json")
    return 0
