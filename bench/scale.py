"""Scale of the data path: practice -> judge -> prefs at N problems x 4 samples, canned engine.

The engine is the canned stand-in (``engine.kind: canned``: deterministic completions, no model),
so what is measured is reading, batching, judging by the Serve judge app (exact), committing
parts and building preferences, not vLLM. Each N runs in a fresh driver process on a fresh local
Ray (2 CPUs) so its peak RSS is its own; the judge app is started before the clock starts.

Per N it prints wall time, sample rows/s (N x 4 / wall) and the driver's peak RSS, and last::

    scale: driver_rss_ratio=<RSS at 250K / RSS at 2.5K> throughput_ratio=<rows/s at 250K / rows/s at 25K>

Goal: driver_rss_ratio <= 1.5, throughput_ratio >= 0.8, the whole bench under 10 minutes.

    .venv/bin/python bench/scale.py [--sizes 2500 25000 250000] [--out /tmp/orca-scale]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SAMPLES = 4


def write_problems(n: int, path: Path) -> None:
    """``n`` synthetic problems, written in chunks (the parent never holds them all either)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orca_math.common.schema import PROBLEM, empty_provenance

    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, PROBLEM) as w:
        for lo in range(0, n, 50_000):
            rows = [{"id": f"p{i:07d}", "question": f"Sam has {i % 40} apples and buys {i % 7 + 1} more. How many now?",
                     "reference_solution": f"{i % 40} + {i % 7 + 1} = {i % 40 + i % 7 + 1}\n#### {i % 40 + i % 7 + 1}",
                     "reference_answer": str(i % 40 + i % 7 + 1), "source": "scale",
                     "provenance": empty_provenance(flow="seed")} for i in range(lo, min(n, lo + 50_000))]
            w.write_table(pa.Table.from_pylist(rows, schema=PROBLEM))


def run_chain(n: int, work: Path) -> dict:
    """One N, in this process: the chain, timed, and this driver's peak RSS."""
    import ray

    from orca_math.judge.config import JudgeConfig, JudgeServeConfig
    from orca_math.judge.serve_judge import ensure_judge_app
    from orca_math.judge.stage import run_judge
    from orca_math.practice.config import PracticeConfig
    from orca_math.practice.stage import run_practice
    from orca_math.prefs.config import PreferenceConfig
    from orca_math.prefs.stage import run_prefs

    problems = work / "problems.parquet"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # 0.5 CPU: the canned engine host takes 1 and reads need a little (2 CPUs in all).
    serve_cfg = JudgeServeConfig(min_replicas=1, max_replicas=1, num_cpus=0.5, max_batch_size=1024,
                                 max_ongoing_requests=64)
    ensure_judge_app(JudgeConfig(), serve_cfg)
    practice = PracticeConfig.model_validate({"engine": {"kind": "canned", "use_gpu": False, "batch_size": 4096},
                                              "decoding": {"n": SAMPLES}})
    started = time.perf_counter()
    samples = run_practice("canned", problems, work / "practice", practice, model_name="M1")
    t_practice = time.perf_counter()
    judgments = run_judge(samples, problems, work / "judge", JudgeConfig(), serve_cfg, batch_size=4096)
    t_judge = time.perf_counter()
    run_prefs(problems, samples, judgments, work / "prefs", PreferenceConfig())
    wall = time.perf_counter() - started
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"n": n, "rows": n * SAMPLES, "wall_s": round(wall, 2), "rows_per_s": round(n * SAMPLES / wall, 1),
            "practice_s": round(t_practice - started, 2), "judge_s": round(t_judge - t_practice, 2),
            "prefs_s": round(wall - (t_judge - started), 2), "driver_peak_rss_mib": round(rss_mib, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2500, 25000, 250000])
    ap.add_argument("--out", default="/tmp/orca-scale")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: run one N
    args = ap.parse_args()
    out = Path(args.out)
    if args.one:  # the result goes to a file: Ray may print to stdout on its way out
        result = run_chain(args.one, out / str(args.one))
        (out / str(args.one) / "result.json").write_text(json.dumps(result))
        return 0
    bench_start = time.perf_counter()
    results = {}
    for n in args.sizes:
        work = out / str(n)
        shutil.rmtree(work, ignore_errors=True)
        write_problems(n, work / "problems.parquet")
        child = subprocess.run([sys.executable, __file__, "--one", str(n), "--out", str(out)],
                               capture_output=True, text=True)
        if child.returncode != 0:
            print(child.stderr[-4000:], file=sys.stderr)
            return child.returncode
        r = json.loads((work / "result.json").read_text())
        results[n] = r
        print(f"N={n:>7} problems x {SAMPLES}: wall {r['wall_s']:7.1f}s (practice {r['practice_s']}s, judge "
              f"{r['judge_s']}s, prefs {r['prefs_s']}s), {r['rows_per_s']:9.1f} rows/s, "
              f"driver peak RSS {r['driver_peak_rss_mib']:.0f} MiB", flush=True)
    sizes = sorted(results)
    if len(sizes) >= 3:
        small, mid, big = sizes[0], sizes[-2], sizes[-1]
        rss = results[big]["driver_peak_rss_mib"] / results[small]["driver_peak_rss_mib"]
        tput = results[big]["rows_per_s"] / results[mid]["rows_per_s"]
        print(f"bench: {time.perf_counter() - bench_start:.0f}s in all")
        print(f"scale: driver_rss_ratio={rss:.2f} throughput_ratio={tput:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
