"""``orca-math demo``: the whole Orca-Math recipe on the procedural world, offline, on a CPU.

``make demo`` runs ``orca-math run --config configs/demo.yaml --out runs/demo``: world seeds ->
AgentInstruct by the symbolic teacher -> SFT (M1) -> practice rounds (sample, judge on Serve,
positives and pairs, then RFT, DPO or KTO: M2, M3) -> eval on held-out world problems after each, plus the
equal-compute SFT control. It writes ``runs/demo/`` like any run (results.md/json/png, manifest)
and ends with what the table says: how far practice moved the student, and whether it beat
plain SFT given the same training compute. Rerunning resumes or skips finished stages.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

DEMO_CONFIG = "configs/demo.yaml"


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole recipe on the procedural world, on a CPU (what `make demo` runs)")
    p.add_argument("--out", default="runs/demo", help="run folder")
    p.add_argument("--config", default=DEMO_CONFIG, help="run config (YAML path or preset)")
    p.set_defaults(func=run)


def noise_points(a: dict, b: dict) -> float:
    """Two standard errors of the difference of two pass@1 rates, in points: differences smaller
    than this are what evaluating on ``n`` problems alone can produce."""
    var = sum(r["accuracy"] * (1 - r["accuracy"]) / max(r["n"], 1) for r in (a, b))
    return 200 * math.sqrt(var)


def verdict(results: list[dict]) -> list[str]:
    """Plain sentences on the table: last round vs M1, and vs the equal-compute SFT control."""
    by_model = {r["model"]: r for r in results}
    rounds = [r for r in results if r["model"].startswith("M") and r["model"][1:].isdigit()]
    if len(rounds) < 2:
        return []
    first, last = rounds[0], rounds[-1]
    points = lambda a, b: 100 * (a["accuracy"] - b["accuracy"])  # noqa: E731
    lines = [f"{last['model']} vs {first['model']}: {points(last, first):+.1f} points "
             f"({100 * first['accuracy']:.1f}% -> {100 * last['accuracy']:.1f}% on {last['n']} held-out problems; "
             f"eval noise {noise_points(last, first):.1f} points)"]
    control = next((r for m, r in by_model.items() if "control" in m), None)
    if control is not None:
        diff, noise = points(last, control), noise_points(last, control)
        outcome = ("beat" if diff > 0 else "did not beat") if abs(diff) > noise else "matched"
        lines.append(f"{last['model']} vs equal-compute SFT control: {diff:+.1f} points "
                     f"(control {100 * control['accuracy']:.1f}%): practice {outcome} plain SFT "
                     f"(differences under {noise:.1f} points are within eval noise)")
    return lines


def run(args: argparse.Namespace) -> int:
    # The demo runs one heavy stage at a time, so each may use every core: without this Ray pins a
    # 1-CPU training worker to one thread. Set before Ray starts so its workers inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    from orca_math.pipeline.run import run_pipeline

    started = time.perf_counter()
    results = run_pipeline(args.config, Path(args.out))
    for line in verdict(results):
        print(line)
    print(f"demo: {time.perf_counter() - started:.0f}s wall (stages finished earlier were skipped)")
    return 0
