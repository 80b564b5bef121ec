"""Judge throughput: judgments/s through Ray Serve (HTTP and handle) vs the in-process answer checker.

The same 10,000 (question, reference, candidate) items, exact method, three ways:

- ``in-process``: ``judge_items`` in this process, one core, no Serve (the ceiling per core);
- ``handle``: ``handle.judge.remote(chunk)`` from the driver, ``--concurrency`` chunks in flight
  (what a Ray Data ``map_batches`` worker does);
- ``http``: ``POST /v1/judge`` with ``--request-size`` items per request, ``--concurrency``
  requests in flight (httpx, async).

Serve runs ``--replicas`` fixed replicas on a local Ray. Each mode runs once untimed (warm-up)
and then timed. Ratios are against in-process.

    .venv/bin/python bench/judge.py [--items 10000] [--replicas 1 2] [--request-size 100] [--concurrency 8]
    .venv/bin/python bench/judge.py --in-process-only   # the checker alone: no Ray, one core

``--against OLD.py`` times this answer checker and an older ``answers.py`` side by side in one
process (``is_correct`` + ``extract_answer`` per item, as ``judge_exact`` calls them), alternating
chunk by chunk, in CPU seconds, so that a busy machine slows both alike:

    git show REV:orca_math/judge/answers.py > /tmp/answers_old.py
    .venv/bin/python bench/judge.py --in-process-only --against /tmp/answers_old.py
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time


def make_items(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Answers the way students write them: right, wrong, formatted, fractions, none at all."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        answer = rng.randint(1, 5000)
        reference = f"She has {answer - 3} + 3 = {answer} apples.\n#### {answer}"
        kind = i % 6
        if kind == 0:
            candidate = f"First, 2 x {answer // 2} = {answer // 2 * 2}. Then we add the rest.\n#### {answer}"
        elif kind == 1:
            candidate = f"So the total is ${answer:,}.00. The answer is ${answer:,}."
        elif kind == 2:
            candidate = f"Step 1: {answer} - 1 = {answer - 1}.\nThe final answer is {answer - 1}."
        elif kind == 3:
            candidate = f"That makes \\boxed{{{answer * 2}/2}} apples."
        elif kind == 4:
            candidate = "I am not sure how to solve this problem, it has too many steps. " * 3
        else:
            candidate = f"{answer} apples in {rng.randint(2, 9)} baskets, so {answer} in all."
        items.append({"question": f"Problem {i}: how many apples?", "reference": reference, "candidate": candidate})
    return items


def bench_in_process(items: list[dict]) -> float:
    from orca_math.judge import JudgeConfig, JudgeItem, judge_items_sync

    parsed = [JudgeItem(**it) for it in items]
    # Warm-up (regex compile, imports) on other items: the checker caches recent texts, and the
    # timed run must not start with its first 500 answers already known.
    judge_items_sync([JudgeItem(**it) for it in make_items(500, seed=1)], JudgeConfig())
    start = time.perf_counter()
    verdicts = judge_items_sync(parsed, JudgeConfig())
    elapsed = time.perf_counter() - start
    assert len(verdicts) == len(items)
    return len(items) / elapsed


def bench_against(items: list[dict], old_path: str, rounds: int = 7, chunk: int = 500) -> tuple[float, float, float]:
    """This checker and the ``answers.py`` at ``old_path``, side by side: (best judgments/s of this one,
    of the old one, median ratio of paired chunks).

    The two alternate chunk by chunk (``chunk`` items each, who goes first alternating) and are
    timed in CPU seconds of this process: on a shared machine wall time would count other processes'
    turns, and a slow spell would land on one checker only.
    """
    import importlib.util
    import statistics

    from orca_math.judge import answers as new

    spec = importlib.util.spec_from_file_location("answers_old", old_path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)

    def seconds(checker, part: list[dict]) -> float:
        start = time.process_time()
        for it in part:
            checker.is_correct(it["candidate"], it["reference"])
            checker.extract_answer(it["candidate"])
        return time.process_time() - start

    for checker in (new, old):
        seconds(checker, make_items(500, seed=1))
    parts = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    best_new = best_old = 0.0
    ratios = []
    for r in range(rounds):
        for checker in (new, old):  # a pass must not start with its texts already known
            checker._final_answer.cache_clear()
            checker._reference.cache_clear()
        t_new = t_old = 0.0
        for n, part in enumerate(parts):
            order = ((new, old) if (n + r) % 2 else (old, new))
            t = {c: seconds(c, part) for c in order}
            t_new, t_old = t_new + t[new], t_old + t[old]
            ratios.append(t[old] / t[new])
        best_new, best_old = max(best_new, len(items) / t_new), max(best_old, len(items) / t_old)
    return best_new, best_old, statistics.median(ratios)


def _chunks(items: list[dict], size: int) -> list[list[dict]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def bench_handle(items: list[dict], request_size: int, concurrency: int) -> float:
    from orca_math.judge.serve_judge import judge_handle

    handle = judge_handle()

    def run() -> float:
        start = time.perf_counter()
        pending, done = [], 0
        for chunk in _chunks(items, request_size):
            pending.append(handle.judge.remote(chunk))
            if len(pending) >= concurrency:
                done += len(pending.pop(0).result())
        done += sum(len(p.result()) for p in pending)
        assert done == len(items)
        return len(items) / (time.perf_counter() - start)

    run()
    return run()


def bench_http(items: list[dict], base_url: str, request_size: int, concurrency: int) -> float:
    import httpx

    async def run() -> float:
        chunks = _chunks(items, request_size)
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as http:
            async def post(chunk: list[dict]) -> int:
                async with limit:
                    r = await http.post(f"{base_url}/judge", json={"items": chunk})
                    r.raise_for_status()
                    return len(r.json()["verdicts"])

            start = time.perf_counter()
            done = sum(await asyncio.gather(*(post(c) for c in chunks)))
            assert done == len(items)
            return len(items) / (time.perf_counter() - start)

    asyncio.run(run())
    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--request-size", type=int, default=100, help="items per HTTP request / handle call")
    parser.add_argument("--concurrency", type=int, default=8, help="requests / handle calls in flight")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--in-process-only", action="store_true",
                        help="measure the answer checker alone and skip Ray Serve (cheap enough for a shared machine)")
    parser.add_argument("--against", metavar="OLD_ANSWERS_PY",
                        help="also time an older orca_math/judge/answers.py side by side with this one")
    args = parser.parse_args()

    items = make_items(args.items)
    if args.against:
        now, then, ratio = bench_against(items, args.against)
        print(f"side by side (CPU time): this checker {now:,.0f}/s, {args.against} {then:,.0f}/s "
              f"(best {now / then:.2f}x, median of paired chunks {ratio:.2f}x)", flush=True)
    rows = [("in-process (1 core)", 1, bench_in_process(items))]
    print(f"in-process: {rows[0][2]:,.0f} judgments/s", flush=True)
    if args.in_process_only:
        return

    import ray
    from ray import serve

    from orca_math.judge import JudgeConfig, JudgeServeConfig
    from orca_math.judge.serve_judge import start_judge, stop_judge
    from orca_math.teacher.scripted import free_port

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level="warning", log_to_driver=False)
    port = free_port()
    try:
        for replicas in args.replicas:
            cfg = JudgeServeConfig(min_replicas=replicas, max_replicas=replicas, num_cpus=args.num_cpus / (replicas + 1),
                                   max_ongoing_requests=2 * args.concurrency, max_batch_size=256)
            base_url = start_judge(JudgeConfig(method="exact"), cfg, port=port)
            h = bench_handle(items, args.request_size, args.concurrency)
            print(f"handle, {replicas} replica(s): {h:,.0f} judgments/s", flush=True)
            w = bench_http(items, base_url, args.request_size, args.concurrency)
            print(f"http, {replicas} replica(s): {w:,.0f} judgments/s", flush=True)
            rows += [("serve handle", replicas, h), ("serve http", replicas, w)]
            stop_judge()
    finally:
        serve.shutdown()
        ray.shutdown()

    base = rows[0][2]
    print(f"\n{args.items:,} items, exact method, {args.request_size} items/request, {args.concurrency} in flight")
    print(f"{'mode':<22}{'replicas':>9}{'judgments/s':>14}{'vs in-process':>15}")
    for mode, replicas, rate in rows:
        print(f"{mode:<22}{replicas:>9}{rate:>14,.0f}{rate / base:>14.2f}x")


if __name__ == "__main__":
    main()
