"""``orca-math practice``: N solutions per problem from a student."""

from __future__ import annotations

import argparse

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.practice.config import PracticeConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("practice", help="sample N solutions per problem from a student (vLLM on Ray Data)")
    p.add_argument("--model", required=True)
    p.add_argument("--problems", required=True, help="problem-schema Parquet file or folder")
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="YAML with a `practice:` section")
    add_config_flags(p, "practice", PracticeConfig, ["limit"])
    p.set_defaults(func=run_practice_command)


def run_practice_command(args: argparse.Namespace) -> int:
    from orca_math.practice.stage import run_practice

    cfg = load_stage_config(PracticeConfig, config_from_args(args), "practice")
    print(f"samples: {run_practice(args.model, args.problems, args.out, cfg)}")
    return 0
