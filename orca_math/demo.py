"""``orca-math demo``: the main job on the embedded default (local Ray, tiny model, GSM8K).

What exists so far: build the tiny student, then evaluate it on GSM8K test with the real eval
stage (vLLM on Ray Data). The full recipe (generate -> SFT -> practice rounds) lands here as the
later stages do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orca_math.config import load_stage_config
from orca_math.evaluate.stage import EvalConfig
from orca_math.tiny_model import TinyModelConfig, build_tiny_model


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job end to end on the embedded CPU default")
    p.add_argument("--out", default="runs/demo", help="run folder")
    p.add_argument("--config", default="tiny", help="config preset or YAML path")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N test problems")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orca_math.evaluate.run import run_eval

    out = Path(args.out)
    print("orca-math demo: the pipeline so far is tiny model -> GSM8K eval; "
          "generation, SFT and practice rounds are not wired into the demo yet.")
    model = out / "models" / "M0"
    if not (model / "config.json").exists():
        build_tiny_model(model, load_stage_config(TinyModelConfig, args.config, "tiny_model"))
    cfg = load_stage_config(EvalConfig, args.config, "eval", {"limit": args.limit})
    s = run_eval(str(model), cfg, out / "eval" / "M0", stage="eval-M0")
    print(f"\n| stage | model | GSM8K pass@1 | n |\n|---|---|---|---|\n| eval | M0 (untrained tiny) | {s['accuracy']:.4f} | {s['n']} |")
    print(f"results: {out / 'eval' / 'M0' / 'summary.json'}")
    return 0
