"""``orca-math tiny-model``: build the tiny Llama student used on CPU machines and in tests."""

from __future__ import annotations

import argparse

from orca_math.config import load_stage_config
from orca_math.tiny_model import TinyModelConfig, build_tiny_model


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-model", help="build a tiny Llama + tokenizer as an HF folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", default=None, help="YAML with a `tiny_model:` section (default: built-in)")
    p.add_argument("--hidden-size", type=int, default=None)
    p.add_argument("--num-layers", type=int, default=None)
    p.add_argument("--num-heads", type=int, default=None)
    p.add_argument("--vocab-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_stage_config(
        TinyModelConfig,
        args.config,
        "tiny_model",
        {
            "hidden_size": args.hidden_size,
            "num_layers": args.num_layers,
            "num_heads": args.num_heads,
            "vocab_size": args.vocab_size,
            "seed": args.seed,
        },
    )
    out = build_tiny_model(args.out, cfg)
    print(f"tiny model written to {out}")
    return 0
