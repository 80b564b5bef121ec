"""The ``generate`` and ``solve`` stages: seeds -> (Ray Data, many teacher requests in flight) ->
committed parts -> final pass (dedup, decontamination) -> ``problems/``, ``quarantine/``, manifest.

Outputs of ``generate`` in ``OUT/``:
  problems/part-*.parquet     kept problems (problem schema, provenance: seed, flow, round, teacher, prompts)
  quarantine/candidates.parquet  every rejected candidate with its reason
  quarantine/seeds.parquet    seed rows that could not be read
  parts/part-*/               committed batches (the resume state)
  manifest.json               seeds_in, candidates, kept, quarantined, reasons, teacher usage per flow
                              (``orca-math generate``; a run records them in its own manifest)

``candidates == kept + quarantined`` is checked before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pyarrow as pa

from orca_math.common.contract import FLOW_ORDER, Flow, SeedBackend, SeedOutput
from orca_math.common.records import RowCountError, to_table, write_parquet, write_quarantine
from orca_math.common.runner import Stage, StageContext, run_stage
from orca_math.common.schema import PROBLEM
from orca_math.generate.backend import build_backend
from orca_math.generate.config import GenerateConfig, SolveStageConfig
from orca_math.generate.parts import PartsContent, PartStore
from orca_math.generate.prompts import PROMPT_VERSION
from orca_math.seeds import read_problems, resolve_data_spec
from orca_math.seeds.dedup import decontaminate, deduplicate, load_eval_sets
from orca_math.teacher.client import teacher_error

log = logging.getLogger(__name__)

ROWS_PER_FILE = 100_000


async def run_seed_batch(backend: SeedBackend, seeds: list[dict]) -> SeedOutput:
    """Every seed of a batch through the backend at once; checks that candidates add up."""
    outputs = await asyncio.gather(*(backend.expand(s) for s in seeds))
    total = SeedOutput()
    for o in outputs:
        total.add(o)
    if total.candidates != len(total.problems) + len(total.quarantined):
        raise RowCountError(f"batch: candidates ({total.candidates}) != kept ({len(total.problems)}) "
                            f"+ quarantined ({len(total.quarantined)})")
    return total


class SeedBatchWorker:
    """Ray Data callable class: one batch of seeds -> one committed part, returns its summary.

    Async, so one worker keeps up to ``teacher.max_in_flight`` requests in flight across all the
    batches it runs at once (``execution.parts_in_flight_per_worker``).
    """

    def __init__(self, cfg: GenerateConfig | SolveStageConfig, parts_dir: str):
        self.cfg = cfg
        self.store = PartStore(parts_dir)
        self.backend: SeedBackend | None = None

    async def __call__(self, batch: pa.Table) -> dict[str, list]:
        if self.backend is None:  # built here: its HTTP pool must live on the loop running the flows
            self.backend = build_backend(self.cfg)
        seeds = batch.to_pylist()
        try:
            output = await run_seed_batch(self.backend, seeds)
        except openai.OpenAIError as e:  # AutoGen's client raises openai's errors: name the endpoint
            raise teacher_error(e, self.cfg.teacher) from None
        part = await asyncio.to_thread(self.store.commit, seeds, output)
        return {"part": [part.name], "seeds": [len(seeds)], "candidates": [output.candidates],
                "kept": [len(output.problems)], "quarantined": [len(output.quarantined)]}


def process_seeds(seeds: list[dict], cfg: GenerateConfig | SolveStageConfig, parts_dir: Path,
                  progress: bool = True) -> int:
    """Run every seed through Ray Data, one committed part per ``seeds_per_part`` seeds."""
    import ray.data
    from tqdm import tqdm

    from orca_math.common.ray_runtime import ensure_ray

    ensure_ray()
    ex = cfg.execution
    # One block per part: each block is one batch, so a part's seeds are exactly one block.
    blocks = [to_table(seeds[i : i + ex.seeds_per_part], PROBLEM) for i in range(0, len(seeds), ex.seeds_per_part)]
    ds = ray.data.from_arrow(blocks).map_batches(
        SeedBatchWorker,
        fn_constructor_kwargs={"cfg": cfg, "parts_dir": str(parts_dir)},
        batch_size=ex.seeds_per_part,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=ex.workers,
                                           max_concurrent_calls_per_actor=ex.parts_in_flight_per_worker,
                                           max_tasks_in_flight_per_actor=ex.parts_in_flight_per_worker),
        num_cpus=ex.num_cpus_per_worker,
    )
    done = 0
    with tqdm(total=len(seeds), desc="seeds", unit="seed", disable=not progress) as bar:
        for row in ds.iter_rows():
            done += row["seeds"]
            bar.update(row["seeds"])
            bar.set_postfix(kept=row["kept"], quarantined=row["quarantined"])
    return done


def _flow_of(p: dict, seed_ids: set[str]) -> str:
    """The flow that produced a kept row (a seed's own row may carry an older provenance.flow)."""
    if p["id"] in seed_ids:
        return Flow.SEED
    return (p.get("provenance") or {}).get("flow") or Flow.SEED


def _problem_order(p: dict, seed_ids: set[str]) -> tuple:
    """Seeds first, then by flow, seed, round: the first of any duplicates is the one kept."""
    prov = p.get("provenance") or {}
    return (FLOW_ORDER.get(_flow_of(p, seed_ids), 9), prov.get("seed_id") or p["id"], prov.get("round") or 0, p["id"])


def _write_problems(rows: list[dict], folder: Path) -> list[str]:
    """Replace ``folder``'s ``part-*.parquet`` with ``rows`` (at least one file, maybe empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    paths = []
    for n, start in enumerate(range(0, max(len(rows), 1), ROWS_PER_FILE)):
        paths.append(str(write_parquet(rows[start : start + ROWS_PER_FILE], PROBLEM, folder / f"part-{n:05d}.parquet")))
    return paths


def _usage_dict(content: PartsContent) -> dict[str, dict[str, int]]:
    return {flow: u.as_dict() for flow, u in sorted(content.usage.items())}


def _by_flow(content: PartsContent, removed: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Per-flow counts from the parts, moved from kept to the dedup/decontam reasons."""
    table = {flow: Counter(c) for flow, c in content.by_flow.items()}
    for flow, reason in removed:
        table[flow]["kept"] -= 1
        table[flow][reason] += 1
    return {flow: dict(sorted(c.items())) for flow, c in sorted(table.items())}


def generate_stage(cfg: GenerateConfig, out_dir: str | Path, *, progress: bool = True, name: str = "generate") -> Stage:
    """The whole ``generate`` stage: seeds -> committed parts -> dedup, decontamination -> ``problems/``.

    A rerun after a crash, or with a larger ``limit``, runs only the seeds without a committed part.
    """
    seeds_spec = resolve_data_spec(cfg.seeds)

    def generate(c: StageContext) -> dict:
        started = time.perf_counter()
        store = PartStore(c.out / "parts")
        read = read_problems(seeds_spec, limit=cfg.limit, stage="generate.seeds")
        stale = store.remove_incomplete()
        wanted = {s["id"] for s in read.rows}  # a part of seeds past a smaller limit stays for a larger one
        committed = store.committed_seeds(wanted)
        pending = [s for s in read.rows if s["id"] not in committed]
        log.info("%s: %d seeds read (%d unreadable), %d already committed, %d to do%s", c.name,
                 read.rows_in, len(read.quarantined), len(read.rows) - len(pending), len(pending),
                 f", {stale} crashed batch(es) discarded" if stale else "")
        processed = process_seeds(pending, cfg, store.root, progress) if pending else 0
        generation_s = time.perf_counter() - started

        content = store.read_all(set(store.committed_seeds(wanted).values()))
        seed_ids = {s["id"] for s in content.seeds}
        problems = sorted(content.problems, key=lambda p: _problem_order(p, seed_ids))
        kept_ids = {p["id"] for p in problems}
        reference = [s for s in content.seeds if s["id"] not in kept_ids]
        deduped = deduplicate(problems, cfg.dedup, reference=reference, stage="generate.dedup")
        decontam = decontaminate(deduped.rows, load_eval_sets(cfg.decontam.eval_sets), cfg.decontam,
                                 stage="generate.decontam")
        kept = decontam.rows
        quarantined = content.quarantined + deduped.quarantined + decontam.quarantined
        removed = [(_flow_of(problems[q["row"]], seed_ids), q["reason"]) for q in deduped.quarantined]
        removed += [(_flow_of(deduped.rows[q["row"]], seed_ids), q["reason"]) for q in decontam.quarantined]

        problem_files = _write_problems(kept, c.out / "problems")
        write_quarantine(quarantined, c.out / "quarantine" / "candidates.parquet")
        write_quarantine(read.quarantined, c.out / "quarantine" / "seeds.parquet")
        reasons = dict(sorted(Counter(q["reason"] for q in quarantined).items()))
        return {
            "outputs": {"problems": str(c.out / "problems"), "quarantine": str(c.out / "quarantine"),
                        "problem_files": problem_files},
            "seeds_in": read.rows_in,
            "seeds_unreadable": len(read.quarantined),
            "seeds_done": len(content.seeds),
            "seeds_this_run": processed,
            "seeds_resumed": len(read.rows) - len(pending),
            "candidates": content.candidates,
            "kept": len(kept),
            "quarantined": len(quarantined),
            "quarantine_reasons": reasons,
            "rows_in": content.candidates, "rows_out": len(kept), "rows_quarantined": len(quarantined),
            "by_flow": _by_flow(content, removed),
            "removed_duplicates": len(deduped.quarantined),
            "removed_contaminated": len(decontam.quarantined),
            "contaminated_by_eval_set": decontam.removed_by_eval_set,
            "teacher_model": cfg.teacher.model,
            "teacher_usage": _usage_dict(content),
            "prompt_version": PROMPT_VERSION,
            "parts": content.parts,
            "generation_s": round(generation_s, 3),
        }

    return Stage(name, cfg, generate, out=Path(out_dir), inputs={"seeds": seeds_spec})


def solve_stage(cfg: SolveStageConfig, out_dir: str | Path, *, progress: bool = True, name: str = "solve") -> Stage:
    """The ``solve`` stage: teacher solutions for an existing problem set (resumable like generate)."""
    data_spec = resolve_data_spec(cfg.data)

    def solve(c: StageContext) -> dict:
        store = PartStore(c.out / "parts")
        read = read_problems(data_spec, limit=cfg.limit, stage="solve.read")
        store.remove_incomplete()
        wanted = {p["id"] for p in read.rows}
        committed = store.committed_seeds(wanted)
        pending = [p for p in read.rows if p["id"] not in committed]
        processed = process_seeds(pending, cfg, store.root, progress) if pending else 0
        content = store.read_all(set(store.committed_seeds(wanted).values()))
        kept = sorted(content.problems, key=lambda p: p["id"])
        problem_files = _write_problems(kept, c.out / "problems")
        write_quarantine(content.quarantined, c.out / "quarantine" / "candidates.parquet")
        write_quarantine(read.quarantined, c.out / "quarantine" / "seeds.parquet")
        return {
            "outputs": {"problems": str(c.out / "problems"), "quarantine": str(c.out / "quarantine"),
                        "problem_files": problem_files},
            "seeds_in": read.rows_in,
            "seeds_unreadable": len(read.quarantined),
            "seeds_done": len(content.seeds),
            "seeds_this_run": processed,
            "candidates": content.candidates,
            "kept": len(kept),
            "quarantined": len(content.quarantined),
            "quarantine_reasons": dict(sorted(Counter(q["reason"] for q in content.quarantined).items())),
            "rows_in": content.candidates, "rows_out": len(kept), "rows_quarantined": len(content.quarantined),
            "teacher_model": cfg.teacher.model,
            "teacher_usage": _usage_dict(content),
            "prompt_version": PROMPT_VERSION,
            "parts": content.parts,
        }

    return Stage(name, cfg, solve, out=Path(out_dir), inputs={"data": data_spec})


def run_generate(cfg: GenerateConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """:func:`generate_stage` on its own (manifest in ``out_dir``); returns its manifest entry."""
    return dict(run_stage(generate_stage(cfg, out_dir, progress=progress)))


def run_solve(cfg: SolveStageConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """:func:`solve_stage` on its own (manifest in ``out_dir``); returns its manifest entry."""
    return dict(run_stage(solve_stage(cfg, out_dir, progress=progress)))
