"""``orca-math demo``: the whole Orca-Math recipe on the procedural world, offline, on a CPU.

``make demo`` runs ``orca-math run --config configs/demo.yaml --out runs/demo``: world seeds ->
AgentInstruct by the symbolic teacher -> SFT (M1) -> practice rounds (sample, judge on Serve,
positives and pairs, then RFT, DPO or KTO: M2, M3) -> eval on held-out world problems after each, plus the
equal-compute SFT control. It writes ``runs/demo/`` like any run (results.md/json/png, manifest).

The terminal gets one line per stage (start, end with its counts and elapsed time, and an estimate
of the time left), then the table and the verdict: how far practice moved the student, and whether
it beat plain SFT given the same training compute, by McNemar's exact test on the per-problem
verdicts; on the world's problems, split by arithmetic steps, which problems that comes from. Ray's,
vLLM's and TRL's own output goes to ``RUN_DIR/logs/demo.log``. Rerunning resumes.
``orca-math demo --compare RUN...`` sets finished runs (other seeds) side by side and tests them together.
The statistics are in ``run/report.py``, the terminal lines in ``run/console.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable

from orca_math.common.config import add_config_flags, config_from_args, resolve_config_path
from orca_math.run.cli import add_run_config_flags
from orca_math.run.config import RunConfig
from orca_math.run.console import LogsToFile, Progress
from orca_math.run.report import arms, arms_table, by_steps, compare_runs, problem_steps, verdict, verdicts

if TYPE_CHECKING:
    from orca_math.run.config import StageConfigs

DEMO_CONFIG = "configs/demo.yaml"
LOG_NAME = "logs/demo.log"
def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole recipe on the procedural world, on a CPU (what `make demo` runs)")
    p.add_argument("--out", default="runs/demo", help="run folder")
    p.add_argument("--config", default=DEMO_CONFIG, help="run config (YAML path or preset)")
    p.add_argument("--verbose", action="store_true", help="let Ray's, vLLM's and TRL's output through to the terminal")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="run nothing: finished demo run folders (other "
                   "seeds) side by side, and the verdict on them together")
    add_run_config_flags(p)
    add_config_flags(p, "run", RunConfig, ["seed"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.compare:  # reads finished runs only: nothing to resume, no log folder
        try:
            print("\n".join(compare_runs(args.compare)))
        except (OSError, ValueError) as e:
            print(f"orca-math demo --compare: {e}", file=sys.stderr)
            return 2
        return 0
    # The demo runs one heavy stage at a time, so each may use every core: without this Ray pins a
    # 1-CPU training worker to one thread. Set before Ray starts so its workers inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    from orca_math.run.config import StageConfigs
    from orca_math.run.recipe import planned_stages, run_pipeline

    out = Path(args.out)
    config = resolve_config_path(config_from_args(args))
    cfgs = StageConfigs.load(config)
    pins = pin_fp32_kernels(cfgs)
    log_path = out / LOG_NAME
    started = time.perf_counter()

    def run_and_report(terminal: IO[str]) -> int:
        from orca_math.run.pace import bench_units, expected_seconds, measure_pace, run_seconds

        planned = planned_stages(cfgs)
        if pins:
            logging.getLogger(__name__).info("fp32 run: torch's kernels pinned for the same models on every x86 CPU: %s", pins)
        pace = measure_pace(cfgs)
        expected, run_s = expected_seconds(planned, cfgs, pace), run_seconds(pace)
        # The raw pace beside each stage's wall time in the manifest is what recalibrates run/pace.py's WORK.
        logging.getLogger(__name__).info("pace: %s; expected seconds: %s, and the run's own %.1f", pace,
                                         {k: round(v, 1) for k, v in expected.items()}, run_s)
        in_all = time.perf_counter() - started + sum(expected.values()) + run_s  # the bench's own seconds included
        print(f"orca-math demo: {len(planned)} stages into {out}/ (logs: {log_path}); at this CPU's measured "
              f"speed ({pace.precision}, {expected.get('sft', 0) / 60:.1f} min of SFT) about "
              f"{in_all / 60:.0f} min in all", file=terminal, flush=True)
        progress = Progress(planned, terminal, expected, run_s, bench_units(planned))
        results = run_pipeline(config, out, on_event=progress)
        skipped = len(progress.done - progress.ran)
        return _report(results, out, cfgs.run.preference_algo, started, skipped, terminal)

    if args.verbose:
        return run_and_report(sys.stdout)
    # A failure or Ctrl-C leaves the block (the terminal is restored) for `orca-math`'s one last line;
    # the traceback goes to this same log.
    with LogsToFile(log_path) as terminal:
        return run_and_report(terminal)


def pin_fp32_kernels(cfgs: StageConfigs) -> dict[str, str]:
    """Where the whole run is fp32 on an x86 CPU, set torch's and oneDNN's kernels to AVX2 before torch
    is imported, here and in Ray's workers (they inherit the environment): the run then draws the same
    models on every such CPU (``hardware.fp32_kernel_pins``). A value already in the environment
    stands. Returns the pins."""
    from orca_math.common.hardware import cpuinfo_flags, fp32_kernel_pins

    pins = fp32_kernel_pins([(c.bf16, c.fp16) for c in (cfgs.sft, cfgs.pref_train)],
                            [cfgs.eval.engine.dtype, cfgs.practice.engine.dtype], cpuinfo_flags(), platform.machine())
    for name, value in pins.items():
        os.environ.setdefault(name, value)
    return pins


def _report(results: list[dict], out: Path, algo: str, started: float, skipped: int, terminal: IO[str]) -> int:
    from orca_math.common.manifest import RunManifest

    manifest = RunManifest(out / "manifest.json").data
    say: Callable[[str], None] = lambda line: print(line, file=terminal, flush=True)  # noqa: E731
    say("")
    say(arms_table(results, manifest, algo))
    say("")
    for line in verdict(results):
        say(line)
    first, last, control = arms(results)
    if last is not None and control is not None and all(r.get("results") for r in (first, last, control)):
        split = by_steps([(problem_steps(out), tuple(verdicts(r["results"]) for r in (first, last, control)))],
                         last["model"])
        if split:
            for line in ["", "where it comes from: the same problems by arithmetic steps", *split, ""]:
                say(line)
    if control is not None:
        say(f"seed noise: run other seeds (orca-math demo --seed 1 --out {out}-seed1, ...), then set them "
            f"beside this one: orca-math demo --compare {out} {out}-seed1 ...")
    say(f"plot: {out / 'results.png'}; table: {out / 'results.md'}; logs: {out / LOG_NAME}")
    reused = f" ({skipped} stages finished earlier were skipped)" if skipped else ""
    say(f"demo: {time.perf_counter() - started:.0f}s wall{reused}")
    return 0
