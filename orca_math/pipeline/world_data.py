"""The ``world`` stage of ``orca-math run``: seeds and the held-out eval set from the procedural world.

With ``run.world: true`` the recipe runs on ``orca_math/world/`` instead of GSM8K: this stage
draws ``world.n_train`` training problems (the seeds the teacher expands, or the SFT set) and
``world.n_test`` held-out problems (what every model is evaluated on), checks that no test
question appears among the training questions, and writes both as problem Parquet.
"""

from __future__ import annotations

from pathlib import Path

from orca_math.manifest import RunManifest
from orca_math.records import write_parquet, write_quarantine
from orca_math.schema import PROBLEM
from orca_math.world.generate import WorldConfig, find_leaks, generate_problems


class WorldLeakError(ValueError):
    """A held-out world question turned up in the training set."""


def world_paths(out_dir: Path) -> tuple[Path, Path]:
    """Where the stage writes (train problems, held-out test problems)."""
    return out_dir / "train.parquet", out_dir / "test.parquet"


def run_world_data(cfg: WorldConfig, out_dir: str | Path, manifest: RunManifest, stage: str = "world") -> dict:
    """Write the world's train and test problem sets under ``out_dir``; return the manifest entry."""
    out_dir = Path(out_dir)
    train_path, test_path = world_paths(out_dir)
    with manifest.stage(stage, cfg, {"n_train": str(cfg.n_train), "n_test": str(cfg.n_test)}) as entry:
        train = generate_problems("train", cfg.n_train, cfg)
        test = generate_problems("test", cfg.n_test, cfg)
        leaks = find_leaks((r["question"] for r in train.rows), (r["question"] for r in test.rows))
        if leaks:
            raise WorldLeakError(f"{stage}: {len(leaks)} test question(s) also in train, e.g. {leaks[0]!r}")
        write_parquet(train.rows, PROBLEM, train_path)
        write_parquet(test.rows, PROBLEM, test_path)
        write_quarantine(train.quarantined + test.quarantined, out_dir / "quarantine.parquet")
        train.rows_in += test.rows_in
        entry.update(
            outputs={"train": str(train_path), "test": str(test_path)},
            rows_in=train.rows_in, rows_out=len(train.rows) + len(test.rows),
            rows_quarantined=len(train.quarantined) + len(test.quarantined),
            train=len(train.rows), test=len(test.rows), leaks=0,
        )
    return manifest.get(stage)
