"""AgentInstruct throughput: teacher requests/s our flows sustain vs the ideal in_flight / delay.

A scripted OpenAI-compatible endpoint (its own process, so it does not share our GIL) answers every
request after a fixed delay. With ``k`` requests allowed in flight, a perfect client does
``k / delay`` requests/s; we measure the request rate the endpoint saw, from its first request
to its last, for:

- ``flows``: the three AutoGen flows on many seeds at once in one process (what one Ray Data
  worker runs), through AutoGen's OpenAIChatCompletionClient, bounded to ``k`` in flight;
- ``pipeline``: the whole ``generate`` stage on a local Ray (Ray Data worker, commits, final pass);
  Ray and actor start-up fall before the first request and are not counted.

Goal: >= 80% of ideal at 64 in flight.

    .venv/bin/python bench/generate.py [--delay-ms 200] [--in-flight 1 8 64] [--no-pipeline]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time

SEEDS_PER_SLOT = 3  # seeds per in-flight slot: enough ready requests to keep every slot busy


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
        from orca_math.agents.scripted import ScriptedTeacher

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
        port_out.put(ep.base_url)
        stop.wait()


def _config(base_url: str, in_flight: int, limit: int):
    from orca_math.agents.config import ExecutionConfig, GenerateConfig
    from orca_math.teacher import TeacherConfig

    teacher = TeacherConfig(base_url=base_url, model="scripted", api_key_env=None, max_in_flight=in_flight,
                            max_retries=0, timeout_s=60)
    parts_in_flight = 4
    return GenerateConfig(limit=limit, teacher=teacher, execution=ExecutionConfig(
        seeds_per_part=max(1, -(-limit // parts_in_flight)), parts_in_flight_per_worker=parts_in_flight,
        num_cpus_per_worker=0.5))


def bench_flows(base_url: str, in_flight: int) -> None:
    from orca_math.agents.backend import build_backend
    from orca_math.agents.pipeline import run_seed_batch
    from orca_math.seeds import read_problems

    seeds = read_problems("gsm8k-train", limit=max(3, SEEDS_PER_SLOT * in_flight)).rows
    cfg = _config(base_url, in_flight, len(seeds))

    async def go():
        return await run_seed_batch(build_backend(cfg), seeds)

    asyncio.run(go())


def bench_pipeline(base_url: str, in_flight: int) -> None:
    from orca_math.agents.pipeline import run_generate

    cfg = _config(base_url, in_flight, max(3, SEEDS_PER_SLOT * in_flight))
    with tempfile.TemporaryDirectory() as out:
        run_generate(cfg, out, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay-ms", type=float, default=200)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--no-pipeline", action="store_true", help="skip the Ray Data runs")
    args = ap.parse_args()
    delay = args.delay_ms / 1000

    ctx = mp.get_context("spawn")
    clock, port_out, stop = _Clock(ctx), ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(clock, delay, port_out, stop), daemon=True)
    server.start()
    base_url = port_out.get(timeout=60)

    rows = []
    try:
        for k in args.in_flight:
            ideal = k / delay
            measured = {}
            for name, fn in (("flows", bench_flows), ("pipeline", bench_pipeline)):
                if name == "pipeline" and args.no_pipeline:
                    continue
                clock.reset()
                t = time.perf_counter()
                fn(base_url, k)
                requests, rate = clock.rate()
                measured[name] = (requests, rate, time.perf_counter() - t)
            rows.append((k, ideal, measured))
            line = "  ".join(f"{n}: {r:7.1f} req/s = {r / ideal:6.1%} of ideal ({q} requests, {w:.1f}s)"
                             for n, (q, r, w) in measured.items())
            print(f"in flight {k:3d}: ideal {ideal:7.1f} req/s | {line}", flush=True)
    finally:
        stop.set()
        server.join(timeout=10)

    print(f"\ndelay {args.delay_ms:.0f} ms; ratio = measured / (in_flight / delay); goal >= 80% at 64")
    print(f"{'in_flight':>9} {'ideal':>8} " + " ".join(f"{n + ' req/s':>15} {'ratio':>6}" for n in rows[0][2]))
    for k, ideal, measured in rows:
        cells = " ".join(f"{r:15.1f} {r / ideal:6.1%}" for _, r, _ in measured.values())
        print(f"{k:9d} {ideal:8.1f} {cells}")


if __name__ == "__main__":
    main()
