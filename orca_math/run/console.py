"""What the demo prints while it runs: one line per stage (``Progress``, with the few counts that say
what it did and an estimate of the time left), while Ray's, vLLM's and TRL's own output goes to a
log file (``LogsToFile``)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO

UNKNOWN_STAGE_S = 5.0  # a stage the estimate has no figure for
MEASURED_S = 20.0  # expected seconds of a unit's stages that must have run before they correct the rest


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
    """One line per stage on the terminal, with a running estimate of the time left: each stage's
    expected seconds (``expected``, from this machine's measured speed: run/pace.py) and the run's
    own (``run_s``: Ray's start, and its end), each stage's corrected by how the stages of its unit
    (``units``, the part of the bench its time follows: ``pace.bench_units``; one unit if not given)
    that ran here compared with their expectation."""

    def __init__(self, planned: list[str], out: IO[str], expected: dict[str, float] | None = None,
                 run_s: float = 0.0, units: dict[str, str] | None = None):
        self.planned, self.out, self.started = planned, out, time.perf_counter()
        self.expected, self.run_s, self.units = expected or {}, run_s, units or {}
        self.done: set[str] = set()
        self.took: dict[str, float] = {}  # stages done here, not skipped: what the corrections are measured on
        self.stage_started: dict[str, float] = {}

    @property
    def ran(self) -> set[str]:
        return set(self.took)

    def reference(self, stage: str) -> float:
        return self.expected.get(stage, UNKNOWN_STAGE_S)

    def unit(self, stage: str) -> str:
        return self.units.get(stage, "")

    def correction(self, unit: str) -> float:
        """How this machine's stages of ``unit`` took against their expectation. Each unit has its own:
        the bench reads training and decoding apart, and the first stages (rows and starts) say
        nothing of SFT's pace. A few seconds say little: the expectation stands until 20 s of it ran."""
        ran = [s for s in self.took if self.unit(s) == unit]
        ref = sum(self.reference(s) for s in ran)
        return sum(self.took[s] for s in ran) / ref if ref >= MEASURED_S else 1.0

    def time_left(self) -> float:
        now = time.perf_counter() - self.started
        # Ray starts before the first stage: once it has begun, what is left of the run's own share is its end.
        run_left = max(0.0, self.run_s - min(self.stage_started.values(), default=now))
        return run_left + sum(self.reference(s) * self.correction(self.unit(s))
                              for s in self.planned if s not in self.done)

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
        took = self.took[stage] = now - self.stage_started.get(stage, now)
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
