"""Training throughput: the same TRL SFT trainer bare in this process vs on Ray Train (1 worker).

Same model, rows, config and step count on both sides. Prints non-padding input tokens per
second of the training loop (HF's ``train_runtime``), the ratio Ray Train / bare (goal >= 0.9),
the same ratio over the median step (robust to bursts of load from other processes on a shared
machine), and, apart, Ray Train's end-to-end wall time including worker start-up.

The Ray worker reserves every CPU of the machine, as a training worker owning its node would:
Ray sets OMP_NUM_THREADS to the worker's CPUs (so a 1-CPU worker would compare 1 thread with 2),
and this process sets the same value for the bare run. Ray Train runs first, then the bare trainer.

    .venv/bin/python bench/train.py [--model PATH_OR_HF_ID] [--problems 256] [--steps 30] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# Ray sets OMP_NUM_THREADS to a worker's CPUs; give the bare trainer the same thread settings.
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


def sft_columns(model: str, n: int, cfg) -> dict[str, list]:
    from orca_math.seeds import read_problems
    from orca_math.train.core import SFT_COLUMNS, sft_rows, tokenizer_counter, trl_columns
    from orca_math.train.trainers import load_tokenizer

    problems = read_problems("gsm8k-train", limit=n).rows
    built = sft_rows([("gsm8k-train", i, p) for i, p in enumerate(problems)], cfg.prompt_template,
                     tokenizer_counter(load_tokenizer(model)), cfg.max_prompt_length, cfg.max_length)
    return trl_columns(built.rows, SFT_COLUMNS)


def median_step_tokens_per_s(log_history: list[dict]) -> float:
    """Median over steps of tokens/s, from the cumulative tokens and runtime HF logs every step."""
    from statistics import median

    points = [(h["num_input_tokens_seen"], h["train_runtime"]) for h in log_history
              if "loss" in h and "train_runtime" in h]
    rates = [(t1 - t0) / (s1 - s0) for (t0, s0), (t1, s1) in zip(points, points[1:]) if s1 > s0]
    return median(rates)


def bench_bare(model: str, columns: dict, cfg, work: Path) -> dict:
    from orca_math.train.trainers import build_trainer

    trainer = build_trainer("sft", model, columns, cfg, work / "bare")
    out = trainer.train()
    return {"tokens": trainer.state.num_input_tokens_seen, "train_s": out.metrics["train_runtime"],
            "median_tps": median_step_tokens_per_s(trainer.state.log_history)}


def bench_ray(model: str, columns: dict, cfg, work: Path) -> dict:
    from orca_math.train.ray_train import fit_on_ray

    t0 = time.perf_counter()
    log = fit_on_ray("sft", model, columns, cfg, work / "ray")
    wall = time.perf_counter() - t0
    return {"tokens": log["tokens_this_run"], "train_s": log["train_metrics"]["train_runtime"], "wall_s": wall,
            "median_tps": median_step_tokens_per_s(log["log_history"])}


def main() -> None:
    import ray

    from orca_math.common.config import load_stage_config
    from orca_math.tiny_model.core import build_tiny_model
    from orca_math.train.config import SFTTrainConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="HF id or folder (default: build the tiny model)")
    ap.add_argument("--problems", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        model = args.model or str(build_tiny_model(work / "tiny"))
        cfg = load_stage_config(SFTTrainConfig, "tiny", "sft", {
            "max_steps": args.steps, "per_device_batch_size": args.batch, "gradient_accumulation_steps": 1,
            "save_steps": args.steps + 1,  # no checkpoint inside the timed loop, on either side
            "logging_steps": 1, "scaling.num_workers": 1, "scaling.resources_per_worker": {"CPU": cpus},
        })
        columns = sft_columns(model, args.problems, cfg)
        print(f"model {model}, {len(columns['prompt'])} GSM8K SFT rows, {args.steps} steps x {args.batch} rows, "
              f"{cpus} CPUs")
        ray.init(address="local", num_cpus=cpus, include_dashboard=False)
        on_ray = bench_ray(model, columns, cfg, work)
        ray.shutdown()
        bare = bench_bare(model, columns, cfg, work)

    bare_tps, ray_tps = bare["tokens"] / bare["train_s"], on_ray["tokens"] / on_ray["train_s"]
    print(f"{'path':<22}{'tokens':>10}{'train s':>10}{'tokens/s':>12}{'median step tok/s':>20}")
    for name, r, tps in (("bare TRL (1 process)", bare, bare_tps), ("Ray Train (1 worker)", on_ray, ray_tps)):
        print(f"{name:<22}{r['tokens']:>10}{r['train_s']:>10.2f}{tps:>12.1f}{r['median_tps']:>20.1f}")
    print(f"ratio Ray Train / bare: {ray_tps / bare_tps:.2f} overall, "
          f"{on_ray['median_tps'] / bare['median_tps']:.2f} median step (goal >= 0.9); "
          f"Ray Train end-to-end wall {on_ray['wall_s']:.1f} s incl. worker start-up")


if __name__ == "__main__":
    main()
