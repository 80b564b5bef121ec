"""``orca-math sft`` and ``orca-math train-pref``: training stages on Ray Train."""

from __future__ import annotations

import argparse
import json

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.train.config import CONFIG_CLASSES, TrainConfigBase

# Named flags for the fields every trainer has; `--set SECTION.KEY=VALUE` reaches the rest.
TRAIN_FLAGS = {"max_steps": None, "limit": None, "scaling.num_workers": "--num-workers",
               "learning_rate": None, "save_steps": None}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="starting model: HF id or local folder")
    p.add_argument("--out", required=True, help="output folder: becomes an HF model folder")
    p.add_argument("--config", default=None, help="YAML with the stage's section (e.g. configs/tiny.yaml)")


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning on teacher solutions (TRL SFTTrainer on Ray Train)")
    p.add_argument("--data", required=True,
                   help="problems (Parquet file/folder in the problem schema, GSM8K JSONL, gsm8k-train) or your own "
                   "data in TRL's SFT formats (prompt/completion or messages; JSONL, Parquet or a datasets folder)")
    _common(p)
    add_config_flags(p, "sft", CONFIG_CLASSES["sft"], TRAIN_FLAGS)
    p.set_defaults(func=run_sft_command)

    p = sub.add_parser("train-pref", help="a round's training: DPO on preference pairs, KTO on labeled examples, "
                       "or rft (SFT on the positives) (TRL on Ray Train)")
    p.add_argument("--algo", required=True, choices=["dpo", "kto", "rft"])
    p.add_argument("--data", required=True, help="a prefs stage's Parquet: preference pairs (dpo), KTO examples (kto) "
                   "or positives.parquet (rft); or your own data in TRL's formats: prompt/chosen/rejected or "
                   "chosen/rejected (dpo), prompt/completion/label (kto, rft); JSONL, Parquet or a datasets folder")
    _common(p)
    add_config_flags(p, "train", TrainConfigBase, TRAIN_FLAGS)  # `train:` reaches whichever --algo runs
    for algo in ("dpo", "kto", "rft"):
        add_config_flags(p, algo, CONFIG_CLASSES[algo])
    p.set_defaults(func=run_pref_command)


def _config(algo: str, args: argparse.Namespace):
    return load_stage_config(CONFIG_CLASSES[algo], config_from_args(args), algo)


def _print_result(stage: str, out: str) -> None:
    from orca_math.train.stage import train_summary

    entry = train_summary(out, stage)
    m = entry.get("metrics", {})
    print(f"{stage}: {entry['rows_out']} rows trained ({entry['rows_quarantined']} quarantined "
          f"{json.dumps(entry['quarantine_reasons'])}), step {m.get('global_step')}, "
          f"loss {m.get('first_loss')} -> {m.get('last_loss')} -> {out} (loss plot {out}/loss.png)")


def run_sft_command(args: argparse.Namespace) -> int:
    from orca_math.train.stage import run_sft

    run_sft(args.model, args.data, args.out, _config("sft", args))
    _print_result("sft", args.out)
    return 0


def run_pref_command(args: argparse.Namespace) -> int:
    from orca_math.train.stage import run_preference

    run_preference(args.algo, args.model, args.data, args.out, _config(args.algo, args))
    _print_result(args.algo, args.out)
    return 0
