"""``orca-math prefs``: DPO pairs and KTO examples from judged samples."""

from __future__ import annotations

import argparse

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.prefs.config import PreferenceConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prefs", help="DPO pairs and KTO examples from judged samples")
    p.add_argument("--problems", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--judgments", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--round", type=int, default=1)
    p.add_argument("--config", default=None, help="YAML with a `prefs:` section")
    add_config_flags(p, "prefs", PreferenceConfig)
    p.set_defaults(func=run_prefs_command)


def run_prefs_command(args: argparse.Namespace) -> int:
    from orca_math.prefs.stage import run_prefs

    cfg = load_stage_config(PreferenceConfig, config_from_args(args), "prefs")
    paths = run_prefs(args.problems, args.samples, args.judgments, args.out, cfg, round_k=args.round)
    print(f"pairs: {paths['pairs']}\nkto: {paths['kto']}")
    return 0
