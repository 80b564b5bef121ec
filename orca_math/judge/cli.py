"""``orca-math judge``: practice samples judged against the teacher answers."""

from __future__ import annotations

import argparse

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.judge.config import JudgeConfig
from orca_math.serve.config import ServeConfig
from orca_math.teacher.config import TeacherConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="judge practice samples against the teacher answers (Serve judge)")
    p.add_argument("--samples", required=True, help="sample-schema Parquet")
    p.add_argument("--problems", required=True, help="problem-schema Parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="YAML with `judge:`, `serve:` and (llm) `teacher:` sections")
    for section, cls in (("judge", JudgeConfig), ("serve", ServeConfig), ("teacher", TeacherConfig)):
        add_config_flags(p, section, cls)
    p.set_defaults(func=run_judge_command)


def run_judge_command(args: argparse.Namespace) -> int:
    from orca_math.judge.serve_judge import release_judge
    from orca_math.judge.stage import run_judge

    config = config_from_args(args)
    judge_cfg = load_stage_config(JudgeConfig, config, "judge")
    teacher = load_stage_config(TeacherConfig, config, "teacher") if judge_cfg.method != "exact" else None
    serve_cfg = load_stage_config(ServeConfig, config, "serve").judge
    try:
        print(f"judgments: {run_judge(args.samples, args.problems, args.out, judge_cfg, serve_cfg, teacher)}")
    finally:
        release_judge()  # a one-off command must not leave judge replicas holding cluster CPUs after it exits
    return 0
