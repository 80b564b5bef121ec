"""AgentInstruct throughput: teacher requests/s our flows sustain vs the ideal in_flight / delay.

A scripted OpenAI-compatible endpoint (its own process, so it does not share our GIL) answers every
request after a fixed delay. With ``k`` requests allowed in flight, a perfect client does
``k / delay`` requests/s; we measure the request rate the endpoint saw, from its first request
to its last, for:

- ``openai``: the bare ``openai.AsyncOpenAI`` client, ``k`` requests in flight, nothing else: the
  floor our stack sits on (its per-request CPU bounds what any client on this machine can do);
- ``flows``: the three AutoGen flows on many seeds at once in one process (what one Ray Data
  worker runs), through AutoGen's OpenAIChatCompletionClient, bounded to ``k`` in flight;
- ``pipeline``: the whole ``generate`` stage on a local Ray (one Ray Data worker, commits, final
  pass); Ray and actor start-up fall before the first request and are not counted;
- ``pipeline-2w``: the same with two workers of ``k/2`` in flight each (client CPU on two cores).

Client CPU per request is printed too: on a small, shared machine it, not the code, caps the rate.

Goal: >= 80% of ideal at 64 in flight.

    .venv/bin/python bench/generate.py [--delay-ms 200] [--in-flight 1 8 64] [--no-pipeline]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time

SEEDS_PER_SLOT = 6  # seeds per in-flight slot: a long steady state, so the last chains (tail) weigh little


class _Clock:
    """Request timing shared with the endpoint process: count, first start, last end."""

    def __init__(self, ctx):
        self.lock = ctx.Lock()
        self.count = ctx.Value("l", 0, lock=False)
        self.first = ctx.Value("d", 0.0, lock=False)
        self.last = ctx.Value("d", 0.0, lock=False)

    def reset(self) -> None:
        with self.lock:
            self.count.value, self.first.value, self.last.value = 0, 0.0, 0.0

    def rate(self) -> tuple[int, float]:
        with self.lock:
            span = self.last.value - self.first.value
            return self.count.value, (self.count.value / span if span > 0 else 0.0)


class _TimedTeacher:
    def __init__(self, clock: _Clock, delay_s: float):
        from orca_math.generate.scripted import ScriptedTeacher

        self.clock, self.inner = clock, ScriptedTeacher(delay_s=delay_s)

    def __call__(self, body):
        start = time.time()
        text = self.inner(body)
        with self.clock.lock:
            if not self.clock.first.value:
                self.clock.first.value = start
            self.clock.count.value += 1
            self.clock.last.value = max(self.clock.last.value, time.time())
        return text


def _serve(clock: _Clock, delay_s: float, port_out, stop) -> None:
    from orca_math.teacher.scripted import ScriptedEndpoint

    with ScriptedEndpoint(reply=_TimedTeacher(clock, delay_s)) as ep:
        # http.server listens with a backlog of 5; 64 clients connecting at once would see dropped
        # SYNs and 1 s retransmits. listen() again just raises the backlog.
        ep._server.socket.listen(256)
        # It also writes headers and body in two sends: with Nagle on, the body waits for the
        # client's delayed ACK (~40 ms), which would add to every "fixed" 200 ms delay.
        ep._server.RequestHandlerClass.disable_nagle_algorithm = True
        port_out.put(ep.base_url)
        stop.wait()


def _config(base_url: str, in_flight: int, limit: int, workers: int = 1):
    from orca_math.generate.config import ExecutionConfig, GenerateConfig
    from orca_math.teacher import TeacherConfig

    teacher = TeacherConfig(base_url=base_url, model="scripted", api_key_env=None,
                            max_in_flight=max(1, in_flight // workers), max_retries=0, timeout_s=60)
    parts_in_flight = 4
    return GenerateConfig(limit=limit, teacher=teacher, execution=ExecutionConfig(
        seeds_per_part=max(1, -(-limit // (parts_in_flight * workers))), parts_in_flight_per_worker=parts_in_flight,
        workers=workers, num_cpus_per_worker=0.5))


def bench_openai(base_url: str, in_flight: int) -> None:
    import openai

    from orca_math.generate import prompts

    messages = [{"role": "system", "content": prompts.SOLVER_SYSTEM}, {"role": "user", "content": "What is 2 + 2?"}]
    n = 10 * SEEDS_PER_SLOT * in_flight  # about as many requests as the flows send

    async def go():
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
        slots = asyncio.Semaphore(in_flight)

        async def one():
            async with slots:
                await client.chat.completions.create(model="scripted", messages=messages, max_tokens=256)

        await asyncio.gather(*(one() for _ in range(n)))
        await client.close()

    asyncio.run(go())


def bench_flows(base_url: str, in_flight: int) -> None:
    from orca_math.generate.backend import build_backend, close_backend
    from orca_math.generate.stage import run_seed_batch
    from orca_math.seeds import read_problems

    seeds = read_problems("gsm8k-train", limit=max(3, SEEDS_PER_SLOT * in_flight)).rows
    cfg = _config(base_url, in_flight, len(seeds))

    async def go():
        backend = build_backend(cfg)
        await run_seed_batch(backend, seeds)
        await close_backend(backend)

    asyncio.run(go())


def bench_pipeline(base_url: str, in_flight: int, workers: int = 1) -> None:
    from orca_math.generate.stage import run_generate

    cfg = _config(base_url, in_flight, max(3, SEEDS_PER_SLOT * in_flight), workers)
    with tempfile.TemporaryDirectory() as out:
        run_generate(cfg, out, progress=False)


def bench_pipeline_2w(base_url: str, in_flight: int) -> None:
    bench_pipeline(base_url, in_flight, workers=2)


RUNS = {"openai": bench_openai, "flows": bench_flows, "pipeline": bench_pipeline, "pipeline-2w": bench_pipeline_2w}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay-ms", type=float, default=200)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--no-pipeline", action="store_true", help="skip the Ray Data runs")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per cell; the best is kept (other jobs on a shared machine only slow a run down)")
    ap.add_argument("--runs", nargs="+", default=["openai", "flows", "pipeline", "pipeline-2w"],
                    help="which of openai flows pipeline pipeline-2w to run")
    args = ap.parse_args()
    delay = args.delay_ms / 1000

    ctx = mp.get_context("spawn")
    clock, port_out, stop = _Clock(ctx), ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(clock, delay, port_out, stop), daemon=True)
    server.start()
    base_url = port_out.get(timeout=60)

    if not args.no_pipeline and any(r.startswith("pipeline") for r in args.runs):
        import ray

        # A Ray of our own: never join a cluster someone started with `ray start` on this machine.
        ray.init(address="local", include_dashboard=False, log_to_driver=False)

    rows = []
    try:
        for k in args.in_flight:
            ideal = k / delay
            measured = {}
            for name, fn in RUNS.items():
                if name not in args.runs or (args.no_pipeline and name.startswith("pipeline")) \
                        or (name == "pipeline-2w" and k < 2):
                    continue
                for _ in range(args.repeat):
                    clock.reset()
                    t, cpu = time.perf_counter(), time.process_time()
                    fn(base_url, k)
                    requests, rate = clock.rate()
                    # Ray workers are other processes: their CPU is not counted here.
                    cpu_ms = (time.process_time() - cpu) / max(requests, 1) * 1000 \
                        if not name.startswith("pipeline") else None
                    if name not in measured or rate > measured[name][1]:
                        measured[name] = (requests, rate, time.perf_counter() - t, cpu_ms)
            rows.append((k, ideal, measured))
            line = "  ".join(f"{n}: {r:6.1f} req/s = {r / ideal:6.1%} ({q} req, {w:.1f}s"
                             + (f", {c:.2f} ms CPU/req)" if c is not None else ")")
                             for n, (q, r, w, c) in measured.items())
            print(f"in flight {k:3d}: ideal {ideal:7.1f} req/s | {line}", flush=True)
    finally:
        stop.set()
        server.join(timeout=10)

    print(f"\ndelay {args.delay_ms:.0f} ms, best of {args.repeat}; ratio = measured / (in_flight / delay); "
          "goal >= 80% at 64")
    names = [n for n in RUNS if any(n in m for _, _, m in rows)]
    print(f"{'in_flight':>9} {'ideal':>8} " + " ".join(f"{n + ' req/s':>18} {'ratio':>6}" for n in names))
    for k, ideal, measured in rows:
        cells = " ".join(f"{measured[n][1]:18.1f} {measured[n][1] / ideal:6.1%}" if n in measured else f"{'-':>18} {'-':>6}"
                         for n in names)
        print(f"{k:9d} {ideal:8.1f} {cells}")


if __name__ == "__main__":
    main()
