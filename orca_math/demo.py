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
# Seconds each stage took in `make demo` on the committed config (D0 in docs/demo-results.md: a 2-core
# AMD EPYC Zen 4 with native bf16; dpo and kto not measured there, taken as rft's), scaled by how fast
# this machine has been so far: the time-left estimate. Stages not listed count as 5 s.
REFERENCE_S = {"student": 6, "world": 6, "seeds": 1, "generate": 10, "sft": 193, "eval": 23, "practice": 57,
               "judge": 8, "prefs": 2, "rft": 33, "dpo": 33, "kto": 33, "sft-control": 81}


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


def verdicts(path: str | Path) -> dict[str, bool]:
    """problem id -> right, from an eval's ``results.parquet``."""
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["problem_id", "correct"]).to_pydict()
    return dict(zip(t["problem_id"], t["correct"]))


def discordant(a: dict[str, bool], b: dict[str, bool]) -> tuple[int, int, int]:
    """(A right & B wrong, A wrong & B right, problems in both) from two evals' verdicts."""
    common = a.keys() & b.keys()
    wins = sum(1 for p in common if a[p] and not b[p])
    losses = sum(1 for p in common if b[p] and not a[p])
    return wins, losses, len(common)


def arms(results: list[dict]) -> tuple[dict | None, dict | None, dict | None]:
    """(M1, the last round's model, the control) among a run's results rows; None where absent."""
    rounds = [r for r in results if r["model"].startswith("M") and r["model"][1:].isdigit()]
    control = next((r for r in results if "control" in r["model"]), None)
    if len(rounds) < 2:
        return (rounds or [None])[0], None, control
    return rounds[0], rounds[-1], control


def points(a: dict, b: dict) -> float:
    return 100 * (a["accuracy"] - b["accuracy"])


def outcome(p: float) -> str:
    """How a verdict reads: practice ``beat`` / ``did not beat`` plain SFT at one-sided p < 0.05."""
    return "beat" if p < 0.05 else "did not beat"


def verdict(results: list[dict]) -> list[str]:
    """Plain sentences on the table: last round vs M1, and vs the equal-compute SFT control."""
    first, last, control = arms(results)
    if last is None:
        return []
    lines = [f"{last['model']} vs {first['model']}: {points(last, first):+.1f} points "
             f"({100 * first['accuracy']:.1f}% -> {100 * last['accuracy']:.1f}% on {last['n']} held-out problems; "
             f"eval noise {noise_points(last, first):.1f} points)"]
    if control is None:
        return lines
    diff, noise = points(last, control), noise_points(last, control)
    if last.get("results") and control.get("results"):
        wins, losses, n = discordant(verdicts(last["results"]), verdicts(control["results"]))
        p = mcnemar_one_sided(wins, losses)
        lines.append(f"{last['model']} vs equal-compute SFT control: {diff:+.1f} points (control "
                     f"{100 * control['accuracy']:.1f}%): practice {outcome(p)} plain SFT (McNemar exact, one-sided: "
                     f"p = {p:.3g}; {wins} problems only {last['model']} solved, {losses} only the control, of {n})")
    unpaired = ("beat" if diff > 0 else "fell behind") if abs(diff) > noise else "matched"
    lines.append(f"  unpaired, more conservative: practice {unpaired} plain SFT "
                 f"(differences under {noise:.1f} points are within two standard errors)")
    return lines


EXACT_SIGN_FLIPS_UP_TO = 16  # runs: 65,536 sign patterns, well under a second


def sign_flip_one_sided(diffs: list[float]) -> float:
    """One-sided p that the runs' mean difference is above 0, each run one draw: the share of the
    2^n ways to flip the differences' signs whose sum reaches the observed one (exact up to 16
    runs; beyond, 65,536 seeded random flips plus the observed one, which keeps p above 0). The
    runs' own spread, training's and the eval's, is the noise: no assumption about its shape."""
    import itertools
    import random

    n, observed = len(diffs), sum(diffs)
    reaches = lambda signs: sum(s * d for s, d in zip(signs, diffs)) >= observed - 1e-9  # noqa: E731
    if n <= EXACT_SIGN_FLIPS_UP_TO:
        return sum(map(reaches, itertools.product((1, -1), repeat=n))) / 2**n
    rng = random.Random(0)
    draws = 1 << 16
    return (1 + sum(reaches(rng.choices((1, -1), k=n)) for _ in range(draws))) / (draws + 1)


def compare_runs(run_dirs: list[str | Path]) -> list[str]:
    """Finished demo runs side by side (other seeds, other precisions), then the verdict on them
    together: one run resolves only differences above its test's noise (about 1.5 points on 2,000 problems).

    Two verdicts, for two questions:

    - Pooled: are these runs' practiced models better than their controls? McNemar's exact test on
      every run's discordant problems together: under the null each is a fair coin, and runs train
      their models independently (also two runs of one seed on the same problems, e.g. bf16 and
      fp32), so their sum is Binomial(n, 1/2) as in one run.
    - Across runs: will practice beat the control for a new seed? Each run is one draw of the
      difference, noise of training included (:func:`sign_flip_one_sided`): it takes more runs.

    Two runs with the same verdicts on every problem (the same command twice: runs are
    reproducible) are one run counted twice: refused.
    """
    import json

    seen: dict[tuple[frozenset, frozenset], Path] = {}
    head = "| run | M1 | {last} | {control} | {last} - M1 | {last} - control | only {last} / only control | p |"
    lines, labels, wins_all, losses_all, diffs, gains, split = [], None, 0, 0, [], [], []
    for run_dir in map(Path, run_dirs):
        path = run_dir / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing: {run_dir} is not a finished demo run")
        first, last, control = arms(json.loads(path.read_text()))
        if last is None or control is None:
            raise ValueError(f"{path}: needs M1, a practice round and the control (run.sft_control: true)")
        if labels is None:
            labels = last["model"], control["model"]
            lines += [head.format(last=labels[0], control=labels[1]), "|---" * 8 + "|"]
        elif labels != (last["model"], control["model"]):
            raise ValueError(f"{path}: compares {last['model']} with {control['model']!r}, the first run "
                             f"{labels[0]} with {labels[1]!r}: pool runs of one recipe")
        for row in (last, control):
            if not (row.get("results") and Path(row["results"]).exists()):  # Path("") would be the cwd
                raise FileNotFoundError(f"{path}: {row['model']}'s per-problem verdicts {row.get('results')!r} "
                                        "are not there (was the run folder moved or pruned?)")
        ours, theirs = verdicts(last["results"]), verdicts(control["results"])
        key = frozenset(ours.items()), frozenset(theirs.items())
        if key in seen:
            raise ValueError(f"{run_dir} and {seen[key]} have the same verdicts on every problem: one run "
                             "twice (pool runs of other seeds)")
        seen[key] = run_dir
        if first.get("results") and Path(first["results"]).exists():
            split.append((problem_steps(run_dir), (verdicts(first["results"]), ours, theirs)))
        wins, losses, _ = discordant(ours, theirs)
        wins_all, losses_all = wins_all + wins, losses_all + losses
        diffs.append(points(last, control))
        gains.append(points(last, first))
        lines.append(f"| {run_dir} | {100 * first['accuracy']:.1f}% | {100 * last['accuracy']:.1f}% | "
                     f"{100 * control['accuracy']:.1f}% | {gains[-1]:+.1f} | {diffs[-1]:+.1f} | {wins} / {losses} "
                     f"| {mcnemar_one_sided(wins, losses):.2g} |")
    p, p_runs, n = mcnemar_one_sided(wins_all, losses_all), sign_flip_one_sided(diffs), len(diffs)
    lines += ["", f"{n} runs: {labels[0]} - M1 {sum(gains) / n:+.1f} points on average ({min(gains):+.1f} to "
              f"{max(gains):+.1f}); {labels[0]} - control {sum(diffs) / n:+.1f} ({min(diffs):+.1f} to {max(diffs):+.1f})",
              f"pooled: in these runs practice {outcome(p)} plain SFT (McNemar exact, one-sided, over all runs' "
              f"problems: p = {p:.3g}; {wins_all} problems only {labels[0]} solved, {losses_all} only the control)",
              f"across runs: practice {outcome(p_runs)} plain SFT from seed to seed (sign-flip test on the {n} "
              f"runs' differences, one-sided: p = {p_runs:.3g}"
              + (f"; the smallest {n} runs can give is {0.5 ** n:.2g})" if n <= EXACT_SIGN_FLIPS_UP_TO else ")")]
    split_lines = by_steps(split, labels[0])
    if split_lines:
        lines += ["", "where it comes from: all runs' problems by arithmetic steps", *split_lines]
    return lines


def problem_steps(run_dir: str | Path) -> dict[str, int]:
    """problem id -> arithmetic steps of a world run's held-out problems; {} when its test set is
    not the world's (nothing to split by)."""
    from orca_math.common.manifest import RunManifest
    from orca_math.common.records import read_parquet
    from orca_math.common.schema import PROBLEM
    from orca_math.world.core import program_from_row
    from orca_math.world.steps import arithmetic_steps

    test = ((RunManifest(Path(run_dir) / "manifest.json").get("world") or {}).get("outputs") or {}).get("test")
    if not (test and Path(test).exists()):
        return {}
    return {row["id"]: arithmetic_steps(program_from_row(row)) for row in read_parquet(test, PROBLEM)}


def by_steps(runs: list[tuple[dict[str, int], tuple[dict, dict, dict]]], last: str) -> list[str]:
    """The verdict's problems split by arithmetic steps, over ``runs``: (problem id -> steps, the
    verdicts of M1, ``last`` and the control). Per step count: each arm's pass@1, and the
    discordant problems of ``last`` and the control with McNemar's one-sided p. A breakdown of the
    verdict, not a second one: it says which problems the difference comes from."""
    split: dict[int, list[tuple[dict, ...]]] = {}
    for steps, arm_verdicts in runs:
        for k in set(steps.values()):
            split.setdefault(k, []).append(tuple({pid: v[pid] for pid, s in steps.items() if s == k and pid in v}
                                                 for v in arm_verdicts))
    if not split:
        return []
    lines = [f"| steps | problems | M1 | {last} | control | {last} - M1 | {last} - control "
             f"| only {last} / only control | p |", "|---" * 9 + "|"]
    for k, parts in sorted(split.items()):
        m1, ours, theirs = (100 * sum(sum(p[i].values()) for p in parts) / max(sum(len(p[i]) for p in parts), 1)
                            for i in range(3))
        wins, losses, n = map(sum, zip(*(discordant(p[1], p[2]) for p in parts)))
        lines.append(f"| {k} | {n} | {m1:.1f}% | {ours:.1f}% | {theirs:.1f}% | {ours - m1:+.1f} | {ours - theirs:+.1f} "
                     f"| {wins} / {losses} | {mcnemar_one_sided(wins, losses):.2g} |")
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
    report = entry.get("report") or {}
    if report.get("problems_mastered_skipped"):  # prefs.skip_mastered: what the round does not train on
        parts.append(f"{report['problems_mastered_skipped']} of {report['problems']} problems mastered, left out")
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
        pace = elapsed / ref_done if ref_done >= 20 else 1.0
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
