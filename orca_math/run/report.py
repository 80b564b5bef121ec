"""The demo's verdict, from finished runs: how far practice moved the student and whether it beat
the equal-compute SFT control, by McNemar's exact test on the per-problem verdicts (one run) or a
sign-flip test over seeds (``compare_runs``), split by arithmetic steps on the world's problems;
and each arm with what it cost (``arms_table``). Reads Parquet and manifests; runs nothing."""

from __future__ import annotations

import math
from pathlib import Path


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


def is_round(result: dict) -> bool:
    """A results row of a round's model (M0, M1, M2, ...), not of an arm beside them (the control)."""
    return result["model"].startswith("M") and result["model"][1:].isdigit()


def arms(results: list[dict]) -> tuple[dict | None, dict | None, dict | None]:
    """(M1, the last round's model, the control) among a run's results rows; None where absent."""
    rounds = [r for r in results if is_round(r)]
    control = next((r for r in results if "control" in r["model"]), None)
    if len(rounds) < 2:
        return (rounds or [None])[0], None, control
    return rounds[0], rounds[-1], control


def points(a: dict, b: dict) -> float:
    return 100 * (a["accuracy"] - b["accuracy"])


def outcome(p: float) -> str:
    """How a verdict reads: practice ``beat`` / ``did not beat`` plain SFT at one-sided p < 0.05."""
    return "beat" if p < 0.05 else "did not beat"


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a pass@1 rate on ``n`` problems (stays inside [0, 1], unlike the
    normal approximation near 0% and 100%)."""
    if n <= 0:
        return 0.0, 1.0
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_test(last: dict, control: dict) -> tuple[int, int, int, float] | None:
    """(only ``last`` right, only ``control`` right, problems in both, one-sided McNemar p) from the two
    evals' per-problem verdicts; None where either has no results file."""
    if not (last.get("results") and control.get("results")):
        return None
    wins, losses, n = discordant(verdicts(last["results"]), verdicts(control["results"]))
    return wins, losses, n, mcnemar_one_sided(wins, losses)


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
    if (test := paired_test(last, control)) is not None:
        wins, losses, n, p = test
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
