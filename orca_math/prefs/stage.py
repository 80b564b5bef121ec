"""The prefs stage: read problems, samples and judgments; write DPO pairs, KTO examples, a report."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path

from orca_math.common.records import read_parquet, write_parquet, write_quarantine
from orca_math.common.runner import Stage, StageContext, run_stage
from orca_math.common.schema import JUDGMENT, KTO_EXAMPLE, PREFERENCE_PAIR, PROBLEM, SAMPLE
from orca_math.prefs.config import PreferenceConfig
from orca_math.prefs.core import build_preferences

log = logging.getLogger(__name__)


def write_preferences(problems_path: str | Path, samples_path: str | Path, judgments_path: str | Path,
                      out_dir: str | Path, cfg: PreferenceConfig, round_k: int) -> tuple[dict[str, Path], dict]:
    """Build the round's preferences and write them; return the paths and the manifest counts."""
    out_dir = Path(out_dir)
    # Practice writes its samples as parts in no set order; sorted, prefs draw the same pairs every time.
    samples = sorted(read_parquet(samples_path, SAMPLE), key=lambda s: (s["problem_id"], s["sample_index"]))
    prefs = build_preferences(read_parquet(problems_path, PROBLEM), samples,
                              read_parquet(judgments_path, JUDGMENT), cfg, round_k)
    paths = {
        "pairs": write_parquet(prefs.pairs, PREFERENCE_PAIR, out_dir / "pairs.parquet"),
        "kto": write_parquet(prefs.kto_examples, KTO_EXAMPLE, out_dir / "kto.parquet"),
        # Rejection-sampling fine-tuning trains on these alone.
        "positives": write_parquet([e for e in prefs.kto_examples if e["label"]], KTO_EXAMPLE,
                                   out_dir / "positives.parquet"),
        "quarantine": write_quarantine(prefs.quarantined, out_dir / "quarantine.parquet"),
    }
    (out_dir / "report.json").write_text(json.dumps(prefs.report, indent=2))
    return paths, {"report": prefs.report, "rows_in": len(samples), "rows_out": prefs.report["samples_used"],
                   "rows_quarantined": len(prefs.quarantined),
                   "quarantine_reasons": dict(Counter(q["reason"] for q in prefs.quarantined))}


def prefs_stage(problems_path: str | Path, samples_path: str | Path, judgments_path: str | Path,
                out_dir: str | Path, cfg: PreferenceConfig, round_k: int = 1, name: str = "prefs") -> Stage:
    """Write ``pairs.parquet`` (DPO), ``kto.parquet`` (KTO), ``positives.parquet`` (the KTO examples
    labelled true, for rejection-sampling fine-tuning), ``quarantine.parquet``, ``report.json``.

    Not streamed: borrowing negatives draws from every problem's negatives, so one process holds
    the round. Where Ray runs, that process is a Ray task, not the driver.
    """
    inputs = {"problems": str(problems_path), "samples": str(samples_path), "judgments": str(judgments_path),
              "round": str(round_k)}  # the round is in every pair and example id

    def build(c: StageContext) -> dict:
        args = (problems_path, samples_path, judgments_path, c.out, cfg, round_k)
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            # num_cpus=0: judge replicas may hold every CPU of a small cluster until they scale down.
            paths, counts = ray.get(ray.remote(write_preferences).options(num_cpus=0).remote(*args))
        else:
            paths, counts = write_preferences(*args)
        log.info("%s: %s", c.name, counts["report"])
        return {"outputs": {k: str(v) for k, v in paths.items()}, "rows_restored": 0,
                "rows_computed": counts["rows_in"], **counts}

    return Stage(name, cfg, build, out=Path(out_dir), inputs=inputs)


def run_prefs(problems_path: str | Path, samples_path: str | Path, judgments_path: str | Path,
              out_dir: str | Path, cfg: PreferenceConfig, round_k: int = 1) -> dict[str, Path]:
    """:func:`prefs_stage` on its own (manifest in ``out_dir``); returns its files by name
    (``pairs``, ``kto``, ``positives``, ``quarantine``)."""
    entry = run_stage(prefs_stage(problems_path, samples_path, judgments_path, out_dir, cfg, round_k))
    return {k: Path(v) for k, v in entry["outputs"].items()}
