"""The ``seeds`` stage: the problem set the recipe starts from, read into the problem schema."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from orca_math.common.config import StageConfig
from orca_math.common.records import write_parquet, write_quarantine
from orca_math.common.schema import PROBLEM
from orca_math.seeds.readers import read_problems


class SeedsConfig(StageConfig):
    """What the seeds stage reads: only these parts of ``run:`` (so changing, say, ``rounds`` or
    ``practice_limit`` does not redo the seeds and, through the chain, SFT)."""

    seeds: str = Field(..., description="Seed problems (or the SFT set when generate is off).")
    seed_limit: int | None = Field(None, description="Use only the first N seeds.")
    problems: str | None = Field(None, description="A problem set used as it is, instead of the seeds.")


def run_seeds(spec: str, limit: int | None, out_dir: Path) -> dict:
    """Read ``spec`` into ``out_dir/problems.parquet`` (bad rows quarantined); return the manifest fields."""
    out = read_problems(spec, limit=limit, stage="seeds")
    write_parquet(out.rows, PROBLEM, out_dir / "problems.parquet")
    write_quarantine(out.quarantined, out_dir / "quarantine.parquet")
    return {"outputs": {"problems": str(out_dir / "problems.parquet")}, **out.counts()}
