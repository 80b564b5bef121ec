"""``orca-math tiny-model``: build the tiny Llama student used on CPU machines and in tests."""

from __future__ import annotations

import argparse

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.tiny_model.config import TinyModelConfig
from orca_math.tiny_model.core import build_tiny_model


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-model", help="build a tiny Llama + tokenizer as an HF folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", default=None, help="YAML with a `tiny_model:` section (default: built-in)")
    add_config_flags(p, "tiny_model", TinyModelConfig, ["hidden_size", "num_layers", "num_heads", "vocab_size", "seed"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_stage_config(TinyModelConfig, config_from_args(args), "tiny_model")
    out = build_tiny_model(args.out, cfg)
    print(f"tiny model written to {out}")
    return 0
