"""The ``seeds`` stage: the problem set the recipe starts from, read into the problem schema."""

from __future__ import annotations

from pathlib import Path

from orca_math.common.records import write_parquet, write_quarantine
from orca_math.common.runner import Stage
from orca_math.common.schema import PROBLEM
from orca_math.seeds.config import SeedsConfig
from orca_math.seeds.readers import read_problems


def run_seeds(spec: str, limit: int | None, out_dir: Path) -> dict:
    """Read ``spec`` into ``out_dir/problems.parquet`` (bad rows quarantined); return the manifest fields."""
    out = read_problems(spec, limit=limit, stage="seeds")
    write_parquet(out.rows, PROBLEM, out_dir / "problems.parquet")
    write_quarantine(out.quarantined, out_dir / "quarantine.parquet")
    return {"outputs": {"problems": str(out_dir / "problems.parquet")}, **out.counts()}


def seeds_stage(cfg: SeedsConfig, out_dir: str | Path, *, name: str = "seeds") -> Stage:
    """The recipe's ``seeds`` stage: ``cfg.seeds`` (its first ``cfg.seed_limit``) -> ``out_dir/problems.parquet``."""
    return Stage(name, cfg, lambda c: run_seeds(cfg.seeds, cfg.seed_limit, c.out), out=Path(out_dir))
