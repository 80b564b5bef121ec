"""``orca-math world``: procedural problem sets; ``orca-math world-teach``: the symbolic teacher's flows."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from orca_math.common.config import (
    ConfigError,
    add_config_flags,
    config_from_args,
    load_stage_config,
    resolve_config_path,
)
from orca_math.teacher.config import ProceduralTeacherConfig
from orca_math.world.config import WorldConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="procedural GSM8K-style problems (train or held-out test) as problem Parquet")
    p.add_argument("--split", choices=["train", "test"], required=True, help="train and test never share a question")
    p.add_argument("--n", type=int, default=None, help="how many problems (default: world.n_train / world.n_test)")
    p.add_argument("--out", required=True, help="output .parquet file (a manifest.json is kept next to it)")
    p.add_argument("--config", default=None, help="YAML with a `world:` section (e.g. configs/demo.yaml)")
    add_config_flags(p, "world", WorldConfig, ["seed"])
    p.set_defaults(func=run_world)

    t = sub.add_parser("world-teach", help="Ask Me Anything + Suggester/Editor + Solve on world seeds, no LLM")
    t.add_argument("--seeds", required=True, help="world problems Parquet (from `orca-math world`)")
    t.add_argument("--out", required=True, help="output folder: problems/, quarantine/, manifest.json")
    t.add_argument("--config", default=None, help="YAML whose `teacher:` section has `kind: procedural`")
    t.add_argument("--limit", type=int, default=None, help="use only the first N seeds")
    t.add_argument("--rounds", type=int, default=2, help="Suggester+Editor rounds (0: off; paper: 2)")
    t.add_argument("--keep-all-rounds", action="store_true", help="keep every round's problem, not only the last")
    t.add_argument("--include-seeds", action="store_true", help="keep the seeds themselves in the output")
    t.add_argument("--no-ask-me-anything", action="store_true", help="skip the Ask Me Anything flow")
    add_config_flags(t, "teacher", ProceduralTeacherConfig)
    t.set_defaults(func=run_world_teach)


def run_world(args: argparse.Namespace) -> int:
    from orca_math.common.runner import Stage, run_stage
    from orca_math.world.stage import write_world

    cfg = load_stage_config(WorldConfig, config_from_args(args), "world")
    n = args.n if args.n is not None else (cfg.n_train if args.split == "train" else cfg.n_test)
    out = Path(args.out)
    entry = run_stage(Stage(f"world-{args.split}", cfg, out=out, inputs={"split": args.split, "n": str(n)},
                            run=lambda c: write_world(cfg, {args.split: out}, {args.split: n})))
    print(f"world {args.split}: {entry['rows_out']} problems (seed {cfg.seed}) -> {out}")
    return 0


def load_procedural_teacher(path: str | None):
    """The ``teacher:`` section of ``path`` as a ProceduralTeacherConfig (defaults without a file)."""
    from orca_math.teacher.config import ProceduralTeacherConfig, load_teacher_config

    if path is None:
        return ProceduralTeacherConfig()
    cfg = load_teacher_config(path)
    if not isinstance(cfg, ProceduralTeacherConfig):
        raise ConfigError(resolve_config_path(path), "teacher.kind",
                          "world-teach runs the procedural teacher: set `kind: procedural` in the teacher: section")
    return cfg


def run_world_teach(args: argparse.Namespace) -> int:
    from orca_math.common.records import read_parquet, write_parquet, write_quarantine
    from orca_math.common.runner import Stage, run_stage
    from orca_math.common.schema import PROBLEM
    from orca_math.world.teacher import FlowSettings, teach_seeds

    cfg = load_procedural_teacher(config_from_args(args))
    flows = FlowSettings(ask_me_anything=not args.no_ask_me_anything, suggester_editor_rounds=args.rounds,
                         keep_all_rounds=args.keep_all_rounds, include_seeds=args.include_seeds)
    out = Path(args.out)

    def teach(c) -> dict:
        started = time.perf_counter()
        seeds = read_parquet(args.seeds, PROBLEM)[: args.limit]
        result, duplicates = teach_seeds(seeds, cfg, flows)
        write_parquet(result.problems, PROBLEM, out / "problems" / "part-00000.parquet")
        write_quarantine(result.quarantined, out / "quarantine" / "candidates.parquet")
        reasons = Counter(q["reason"] for q in result.quarantined)
        return {
            "outputs": {"problems": str(out / "problems"), "quarantine": str(out / "quarantine")},
            "seeds_in": len(seeds), "candidates": result.candidates, "kept": len(result.problems),
            "quarantined": len(result.quarantined), "quarantine_reasons": dict(sorted(reasons.items())),
            "rows_in": result.candidates, "rows_out": len(result.problems), "rows_quarantined": len(result.quarantined),
            "by_flow": {f: dict(sorted(c.items())) for f, c in sorted(result.by_flow.items())},
            "removed_duplicates": duplicates, "teacher_model": cfg.model,
            "generation_s": round(time.perf_counter() - started, 3),
        }

    e = run_stage(Stage("world-teach", cfg, teach, out=out,
                        inputs={"seeds": str(args.seeds), "flows": repr(flows), "limit": str(args.limit)}))
    print(f"world-teach: {e['seeds_in']} seeds -> {e['candidates']} candidates, {e['kept']} kept, "
          f"{e['quarantined']} quarantined -> {out}")
    return 0
