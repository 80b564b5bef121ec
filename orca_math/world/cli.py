"""``orca-math world``: procedural problem sets. The symbolic teacher's flows run through ``orca-math
generate`` with a config whose ``teacher:`` has ``kind: procedural`` (``generate --config demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.world.config import WorldConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="procedural GSM8K-style problems (train or held-out test) as problem Parquet")
    p.add_argument("--split", choices=["train", "test"], required=True, help="train and test never share a question")
    p.add_argument("--n", type=int, default=None, help="how many problems (default: world.n_train / world.n_test)")
    p.add_argument("--out", required=True, help="output .parquet file (a manifest.json is kept next to it)")
    p.add_argument("--config", default=None, help="YAML with a `world:` section (e.g. configs/demo.yaml)")
    add_config_flags(p, "world", WorldConfig, ["seed"])
    p.set_defaults(func=run_world)


def run_world(args: argparse.Namespace) -> int:
    from orca_math.common.runner import Stage, run_stage
    from orca_math.world.stage import write_world

    cfg = load_stage_config(WorldConfig, config_from_args(args), "world")
    n = args.n if args.n is not None else (cfg.n_train if args.split == "train" else cfg.n_test)
    out = Path(args.out)
    entry = run_stage(Stage(f"world-{args.split}", cfg, out=out, inputs={"split": args.split, "n": str(n)},
                            run=lambda c: write_world(cfg, {args.split: out}, {args.split: n})))
    print(f"world {args.split}: {entry['rows_out']} problems (seed {cfg.seed}) -> {out}")
    return 0
