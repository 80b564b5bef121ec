"""``orca-math generate`` (AgentInstruct: seeds -> new problems) and ``orca-math solve`` (teacher solutions)."""

from __future__ import annotations

import argparse
import json

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.generate.config import GenerateConfig, SolveStageConfig

# Flags for the stage's own teacher (`<section>.teacher`, over the file's top-level `teacher:`) and workers.
TEACHER_FLAGS = {"teacher.base_url": "--teacher-url", "teacher.model": "--teacher-model",
                 "teacher.max_in_flight": "--max-in-flight", "execution.workers": "--workers"}


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_command(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="AgentInstruct: grow seed problems with a teacher (three AutoGen flows, Ray Data)")
    g.add_argument("--config", default=None, help="YAML config with a `generate:` section and a `teacher:` endpoint (e.g. tiny)")
    add_config_flags(g, "generate", GenerateConfig, {"seeds": None, "limit": None, **TEACHER_FLAGS})
    add_config_flags(g, "teacher", GenerateConfig.model_fields["teacher"].annotation)
    _output_args(g)
    g.set_defaults(func=run_generate_command)

    s = sub.add_parser("solve", help="teacher solutions for an existing problem set (keeps those matching the gold answer)")
    s.add_argument("--config", default=None, help="YAML config with a `solve:` section and a `teacher:` endpoint (e.g. tiny)")
    add_config_flags(s, "solve", SolveStageConfig, {"data": None, "limit": None, **TEACHER_FLAGS})
    add_config_flags(s, "teacher", SolveStageConfig.model_fields["teacher"].annotation)
    _output_args(s)
    s.set_defaults(func=run_solve_command)


def _report(summary: dict, out: str) -> None:
    usage = summary.get("teacher_usage", {})
    requests = sum(u["requests"] for u in usage.values())
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in usage.values())
    print(f"{summary['stage']}: {summary['seeds_in']} seeds -> {summary['candidates']} candidates: "
          f"{summary['kept']} kept, {summary['quarantined']} quarantined {json.dumps(summary['quarantine_reasons'])}")
    if "removed_duplicates" in summary:
        print(f"  removed {summary['removed_duplicates']} duplicates, {summary['removed_contaminated']} contaminated "
              f"{json.dumps(summary['contaminated_by_eval_set'])}")
    print(f"  teacher {summary['teacher_model']}: {requests} requests, {tokens} tokens; {summary['wall_s']:.1f}s -> {out}")


def run_generate_command(args: argparse.Namespace) -> int:
    from orca_math.generate.stage import run_generate

    cfg = load_stage_config(GenerateConfig, config_from_args(args), "generate")
    _report(run_generate(cfg, args.out, progress=not args.no_progress), args.out)
    return 0


def run_solve_command(args: argparse.Namespace) -> int:
    from orca_math.generate.stage import run_solve

    cfg = load_stage_config(SolveStageConfig, config_from_args(args), "solve")
    _report(run_solve(cfg, args.out, progress=not args.no_progress), args.out)
    return 0
