"""The ``world`` stage: train and held-out problem sets from the procedural world, as problem Parquet.

With ``run.world: true`` the recipe runs on the world instead of GSM8K: ``world.n_train`` training
problems (the seeds the teacher expands, or the SFT set) and ``world.n_test`` held-out problems
(what every model is evaluated on), checked to share no question. ``orca-math world`` writes one
split with the same function.
"""

from __future__ import annotations

from pathlib import Path

from orca_math.common.records import write_parquet, write_quarantine
from orca_math.common.runner import Stage
from orca_math.common.schema import PROBLEM
from orca_math.world.config import WorldConfig
from orca_math.world.core import Split, find_leaks, generate_problems


class WorldLeakError(ValueError):
    """A held-out world question turned up in the training set."""


def world_paths(out_dir: Path) -> tuple[Path, Path]:
    """Where the recipe's world stage writes (train problems, held-out test problems)."""
    return out_dir / "train.parquet", out_dir / "test.parquet"


def write_world(cfg: WorldConfig, paths: dict[Split, Path], n: dict[Split, int] | None = None) -> dict:
    """Write each split's problems to its path (``n[split]`` of them, default the config's count);
    with both splits, refuse a test question that is also a train question. Returns the manifest fields."""
    n = n or {}
    made = _generate(cfg, {split: n.get(split, cfg.n_train if split == "train" else cfg.n_test) for split in paths})
    if len(made) == 2:
        leaks = find_leaks((r["question"] for r in made["train"].rows), (r["question"] for r in made["test"].rows))
        if leaks:
            raise WorldLeakError(f"{len(leaks)} test question(s) also in train, e.g. {leaks[0]!r}")
    quarantined = []
    for split, out in made.items():
        write_parquet(out.rows, PROBLEM, paths[split])
        quarantined += out.quarantined
    if quarantined:
        write_quarantine(quarantined, next(iter(paths.values())).parent / "quarantine.parquet")
    return {
        "outputs": {split: str(p) for split, p in paths.items()},
        "rows_in": sum(o.rows_in for o in made.values()),
        "rows_out": sum(len(o.rows) for o in made.values()),
        "rows_quarantined": len(quarantined),
        **{split: len(o.rows) for split, o in made.items()},
    }


def _generate(cfg: WorldConfig, counts: dict[Split, int]):
    """Each split's problems, the same either way; where Ray runs, the splits at once in tasks of their own
    (the demo's world on a 2-core CPU: 7.5-8.5 s instead of 11; the test split takes twice the train
    split's time, as most of its draws land in train's bucket and are drawn again)."""
    import ray

    if len(counts) < 2 or not ray.is_initialized():
        return {split: generate_problems(split, k, cfg) for split, k in counts.items()}
    # No CPU reserved: a task that asks for none never waits for a node to offer one (a cluster whose head
    # has no CPUs and whose workers are still booting); the work is the few seconds the driver did alone.
    task = ray.remote(generate_problems).options(num_cpus=0)
    return dict(zip(counts, ray.get([task.remote(split, k, cfg) for split, k in counts.items()])))


def world_stage(cfg: WorldConfig, out_dir: str | Path, *, name: str = "world") -> Stage:
    """The recipe's ``world`` stage: both splits into ``out_dir`` (see :func:`world_paths`)."""
    train, test = world_paths(Path(out_dir))
    return Stage(name, cfg, lambda c: write_world(cfg, {"train": train, "test": test}), out=Path(out_dir))
