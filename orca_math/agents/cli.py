"""``orca-math generate`` (AgentInstruct: seeds -> new problems) and ``orca-math solve`` (teacher solutions)."""

from __future__ import annotations

import argparse
import json

from orca_math.agents.config import GenerateConfig, SolveStageConfig, load_with_teacher


def _teacher_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher-url", default=None, help="OpenAI-compatible base URL (…/v1) of the teacher")
    p.add_argument("--teacher-model", default=None, help="model name the teacher endpoint serves")
    p.add_argument("--max-in-flight", type=int, default=None, help="teacher requests in flight per worker")
    p.add_argument("--workers", type=int, default=None, help="Ray Data workers")
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_command(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="AgentInstruct: grow seed problems with a teacher (three AutoGen flows, Ray Data)")
    g.add_argument("--seeds", default=None, help="gsm8k-train (default), a JSONL/Parquet path, or hf:ID[:CONFIG]:SPLIT")
    g.add_argument("--limit", type=int, default=None, help="use the first N seeds")
    g.add_argument("--config", default=None, help="YAML config with a `generate:` section and a `teacher:` endpoint (e.g. tiny)")
    _teacher_args(g)
    g.set_defaults(func=run_generate_command)

    s = sub.add_parser("solve", help="teacher solutions for an existing problem set (keeps those matching the gold answer)")
    s.add_argument("--data", default=None, help="problems: gsm8k-train (default), a JSONL/Parquet path, or hf:ID")
    s.add_argument("--limit", type=int, default=None, help="solve the first N problems")
    s.add_argument("--config", default=None, help="YAML config with a `solve:` section and a `teacher:` endpoint (e.g. tiny)")
    _teacher_args(s)
    s.set_defaults(func=run_solve_command)


def _overrides(args: argparse.Namespace) -> dict:
    return {"limit": args.limit, "teacher.base_url": args.teacher_url, "teacher.model": args.teacher_model,
            "teacher.max_in_flight": args.max_in_flight, "execution.workers": args.workers}


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
    from orca_math.agents.pipeline import run_generate

    cfg = load_with_teacher(GenerateConfig, args.config, "generate", {"seeds": args.seeds, **_overrides(args)})
    _report(run_generate(cfg, args.out, progress=not args.no_progress), args.out)
    return 0


def run_solve_command(args: argparse.Namespace) -> int:
    from orca_math.agents.pipeline import run_solve

    cfg = load_with_teacher(SolveStageConfig, args.config, "solve", {"data": args.data, **_overrides(args)})
    _report(run_solve(cfg, args.out, progress=not args.no_progress), args.out)
    return 0
