"""``orca-math demo``: the whole Orca-Math recipe on the procedural world, offline, on a CPU.

``make demo`` runs ``orca-math run --config configs/demo.yaml --out runs/demo``: world seeds ->
AgentInstruct by the symbolic teacher -> SFT (M1) -> practice rounds (sample, judge on Serve,
positives and pairs, then RFT, DPO or KTO: M2, M3) -> eval on held-out world problems after each, plus the
equal-compute SFT control. It writes ``runs/demo/`` like any run (results.md/json/png, manifest).

The terminal gets one line per stage (start, end with its counts and elapsed time, and an estimate
of the time left), then the table and the verdict: how far practice moved the student, and whether
it beat plain SFT given the same training compute, by McNemar's exact test on the per-problem
verdicts. Ray's, vLLM's and TRL's own output goes to ``RUN_DIR/logs/demo.log``. Rerunning resumes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import IO, Callable

from orca_math.common.config import add_config_flags, config_from_args, resolve_config_path
from orca_math.run.cli import add_run_config_flags
from orca_math.run.config import RunConfig

DEMO_CONFIG = "configs/demo.yaml"
LOG_NAME = "logs/demo.log"
# Seconds each stage took in a committed run (docs/demo-results.md), scaled by how fast this machine
# has been so far: the time-left estimate. Stages not listed count as 5 s.
REFERENCE_S = {"student": 12, "world": 9, "seeds": 1, "generate": 25, "sft": 292, "eval": 28, "practice": 47,
               "judge": 12, "prefs": 2, "rft": 42, "dpo": 60, "kto": 60, "sft-control": 98}


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole recipe on the procedural world, on a CPU (what `make demo` runs)")
    p.add_argument("--out", default="runs/demo", help="run folder")
    p.add_argument("--config", default=DEMO_CONFIG, help="run config (YAML path or preset)")
    p.add_argument("--verbose", action="store_true", help="let Ray's, vLLM's and TRL's output through to the terminal")
    add_run_config_flags(p)
    add_config_flags(p, "run", RunConfig, ["seed"])
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------- the verdict


def noise_points(a: dict, b: dict) -> float:
    """Two standard errors of the difference of two pass@1 rates, in points: differences smaller
    than this are what evaluating on ``n`` problems alone can produce (unpaired, so conservative)."""
    var = sum(r["accuracy"] * (1 - r["accuracy"]) / max(r["n"], 1) for r in (a, b))
    return 200 * math.sqrt(var)


def mcnemar_one_sided(wins: int, losses: int) -> float:
    """Exact one-sided McNemar p-value that A beats B, from the discordant problems: ``wins`` (A
    right, B wrong) and ``losses`` (A wrong, B right). Under the null each discordant problem is a
    fair coin, so p = P(Binomial(wins + losses, 1/2) >= wins)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def paired_counts(a_path: str | Path, b_path: str | Path) -> tuple[int, int, int]:
    """(A right & B wrong, A wrong & B right, problems in both) from two eval ``results.parquet``."""
    import pyarrow.parquet as pq

    def verdicts(path) -> dict[str, bool]:
        t = pq.read_table(path, columns=["problem_id", "correct"]).to_pydict()
        return dict(zip(t["problem_id"], t["correct"]))

    a, b = verdicts(a_path), verdicts(b_path)
    common = a.keys() & b.keys()
    wins = sum(1 for p in common if a[p] and not b[p])
    losses = sum(1 for p in common if b[p] and not a[p])
    return wins, losses, len(common)


def verdict(results: list[dict]) -> list[str]:
    """Plain sentences on the table: last round vs M1, and vs the equal-compute SFT control."""
    rounds = [r for r in results if r["model"].startswith("M") and r["model"][1:].isdigit()]
    if len(rounds) < 2:
        return []
    first, last = rounds[0], rounds[-1]
    points = lambda a, b: 100 * (a["accuracy"] - b["accuracy"])  # noqa: E731
    lines = [f"{last['model']} vs {first['model']}: {points(last, first):+.1f} points "
             f"({100 * first['accuracy']:.1f}% -> {100 * last['accuracy']:.1f}% on {last['n']} held-out problems; "
             f"eval noise {noise_points(last, first):.1f} points)"]
    control = next((r for r in results if "control" in r["model"]), None)
    if control is None:
        return lines
    diff, noise = points(last, control), noise_points(last, control)
    if last.get("results") and control.get("results"):
        wins, losses, n = paired_counts(last["results"], control["results"])
        p = mcnemar_one_sided(wins, losses)
        outcome = "beat" if p < 0.05 else "did not beat"
        lines.append(f"{last['model']} vs equal-compute SFT control: {diff:+.1f} points (control "
                     f"{100 * control['accuracy']:.1f}%): practice {outcome} plain SFT (McNemar exact, one-sided: "
                     f"p = {p:.3g}; {wins} problems only {last['model']} solved, {losses} only the control, of {n})")
    unpaired = ("beat" if diff > 0 else "fell behind") if abs(diff) > noise else "matched"
    lines.append(f"  unpaired, more conservative: practice {unpaired} plain SFT "
                 f"(differences under {noise:.1f} points are within two standard errors)")
    return lines


def arms_table(results: list[dict], manifest: dict, algo: str) -> str:
    """Each arm after M1 with what it cost: the practice rounds (sampling, judging, training) vs
    the control (training only)."""
    stages = manifest.get("stages", {})
    wall = lambda names: sum(float((stages.get(n) or {}).get("wall_s") or 0) for n in names)  # noqa: E731
    lines = ["| model | pass@1 | what it cost after M1 | wall s |", "|---|---|---|---|"]
    for r in results:
        if r["model"] == "M1":
            lines.append(f"| M1 | {100 * r['accuracy']:.1f}% | SFT | {wall(['sft']):.0f} |")
        elif r["model"][1:].isdigit():
            k = int(r["model"][1:]) - 1
            done = [f"{s}-{j}" for j in range(1, k + 1) for s in ("practice", "judge", "prefs", algo)]
            lines.append(f"| {r['model']} | {100 * r['accuracy']:.1f}% | {k} round(s): practice + judge + {algo} "
                         f"| {wall(done):.0f} |")
    control = next((r for r in results if "control" in r["model"]), None)
    if control is not None:
        lines.append(f"| {control['model']} | {100 * control['accuracy']:.1f}% | plain SFT, as many tokens "
                     f"as the rounds trained on | {wall(['sft-control']):.0f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- what is printed


def stage_counts(stage: str, entry: dict) -> str:
    """The few numbers that say what a finished stage did."""
    if "accuracy" in entry:
        return f"pass@1 {100 * entry['accuracy']:.1f}% on {entry.get('rows_in', '?')}"
    m = entry.get("metrics") or {}
    if "global_step" in m:
        loss = m.get("last_loss")
        prec = (entry.get("precision") or {})
        how = "bf16" if prec.get("bf16") else "fp32" if prec else ""
        return (f"{m['global_step']} steps, {entry.get('rows_out', entry.get('rows_in', '?'))} rows"
                + (f", loss {loss:.3f}" if isinstance(loss, (int, float)) else "") + (f", {how}" if how else ""))
    parts = []
    for key, label in (("rows_in", "in"), ("rows_out", "out"), ("rows_quarantined", "quarantined"),
                       ("samples", "samples"), ("correct", "correct")):
        if key in entry:
            parts.append(f"{entry[key]} {label}")
    return ", ".join(parts)


class Progress:
    """One line per stage on the terminal, with a running estimate of the time left."""

    def __init__(self, planned: list[str], out: IO[str]):
        self.planned, self.out, self.started = planned, out, time.perf_counter()
        self.done: set[str] = set()
        self.ran: set[str] = set()  # done here, not skipped: what this machine's pace is measured on
        self.stage_started: dict[str, float] = {}

    @staticmethod
    def reference(stage: str) -> float:
        return REFERENCE_S.get(stage, REFERENCE_S.get(stage.rsplit("-", 1)[0].split("-M")[0], 5))

    def time_left(self) -> float:
        elapsed = time.perf_counter() - self.started
        ref_done = sum(self.reference(s) for s in self.ran) or 1.0
        ref_left = sum(self.reference(s) for s in self.planned if s not in self.done)
        # Before anything real has run the reference is the best guess; after, this machine's pace.
        pace = elapsed / ref_done if ref_done > 30 else 1.0
        return ref_left * pace

    def __call__(self, event: str, stage: str, entry: dict) -> None:
        now = time.perf_counter() - self.started
        if event == "start":
            self.stage_started[stage] = now
            self._print(f"[{now:5.0f}s] {stage:<20} started   (about {self.time_left() / 60:.0f} min left)")
            return
        self.done.add(stage)
        if event == "skip":
            counts = stage_counts(stage, entry)
            self._print(f"[{now:5.0f}s] {stage:<20} done before, skipped{': ' + counts if counts else ''}")
            return
        self.ran.add(stage)
        took = now - self.stage_started.get(stage, now)
        counts = stage_counts(stage, entry)
        self._print(f"[{now:5.0f}s] {stage:<20} finished in {took:.0f}s{': ' + counts if counts else ''}"
                    f"   (about {self.time_left() / 60:.0f} min left)")

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)


class LogsToFile:
    """Send everything written to this process's stdout/stderr (Ray's worker output, vLLM's and TRL's
    logs, progress bars) to ``path``, at the file-descriptor level so child processes and C code follow;
    ``terminal`` still reaches the screen."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> IO[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        self.log = open(self.path, "a", buffering=1, encoding="utf-8")
        os.dup2(self.log.fileno(), 1)
        os.dup2(self.log.fileno(), 2)
        self.terminal = os.fdopen(os.dup(self.saved[0]), "w", buffering=1, encoding="utf-8")
        return self.terminal

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.terminal.close()
        self.log.close()


def run(args: argparse.Namespace) -> int:
    # The demo runs one heavy stage at a time, so each may use every core: without this Ray pins a
    # 1-CPU training worker to one thread. Set before Ray starts so its workers inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    from orca_math.run.config import StageConfigs
    from orca_math.run.recipe import planned_stages, run_pipeline

    out = Path(args.out)
    config = resolve_config_path(config_from_args(args))
    cfgs = StageConfigs.load(config)
    log_path = out / LOG_NAME
    started = time.perf_counter()

    def run_and_report(terminal: IO[str]) -> int:
        print(f"orca-math demo: {len(planned_stages(cfgs))} stages into {out}/ (logs: {log_path})",
              file=terminal, flush=True)
        progress = Progress(planned_stages(cfgs), terminal)
        results = run_pipeline(config, out, on_event=progress)
        skipped = len(progress.done - progress.ran)
        return _report(results, out, cfgs.run.preference_algo, started, skipped, terminal)

    if args.verbose:
        return run_and_report(sys.stdout)
    # A failure or Ctrl-C leaves the block (the terminal is restored) for `orca-math`'s one last line;
    # the traceback goes to this same log.
    with LogsToFile(log_path) as terminal:
        return run_and_report(terminal)


def _report(results: list[dict], out: Path, algo: str, started: float, skipped: int, terminal: IO[str]) -> int:
    from orca_math.common.manifest import RunManifest

    manifest = RunManifest(out / "manifest.json").data
    say: Callable[[str], None] = lambda line: print(line, file=terminal, flush=True)  # noqa: E731
    say("")
    say(arms_table(results, manifest, algo))
    say("")
    for line in verdict(results):
        say(line)
    say(f"plot: {out / 'results.png'}; table: {out / 'results.md'}; logs: {out / LOG_NAME}")
    reused = f" ({skipped} stages finished earlier were skipped)" if skipped else ""
    say(f"demo: {time.perf_counter() - started:.0f}s wall{reused}")
    return 0
