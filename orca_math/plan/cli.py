"""``orca-math plan``: per stage the node type, workers, GPU memory, tokens, hours and dollars of a run,
offline; exits 1 with the reasons when anything cannot run."""

from __future__ import annotations

import argparse
import sys

from orca_math.common.config import add_config_flags, config_from_args
from orca_math.plan.config import PlanConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    from orca_math.run.cli import add_run_config_flags

    p = sub.add_parser("plan", help="what a run takes (GPU memory, hours, dollars, teacher calls), offline; "
                                    "exits 1 if it cannot run")
    p.add_argument("--config", required=True, help="the run's YAML config (e.g. configs/orca_math_mistral7b.yaml)")
    p.add_argument("--cluster", default=None, help="Ray cluster file (e.g. cluster.yaml); none: one machine")
    # dest is not `out`: plan writes nothing there (a failure's traceback goes to the temp folder)
    p.add_argument("--out", dest="run_dir", default=None,
                   help="the run folder you will pass to `orca-math run` (checked on a cluster)")
    add_run_config_flags(p)
    add_config_flags(p, "plan", PlanConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orca_math.common.config import load_stage_config
    from orca_math.plan.core import load_cluster, plan_run
    from orca_math.run.config import StageConfigs

    config = config_from_args(args)
    cfgs = StageConfigs.load(config)
    plan_cfg = load_stage_config(PlanConfig, config, "plan")
    cluster = load_cluster(args.cluster) if args.cluster else None
    result = plan_run(cfgs, cluster, plan_cfg, args.run_dir)
    print(format_plan(result, args.config, args.cluster))
    if result.problems:
        print(f"\nnot runnable ({len(result.problems)}):", file=sys.stderr)
        for line in result.problems:
            print(f"  - {line}", file=sys.stderr)
        return 1
    return 0


def format_plan(result, config: str, cluster: str | None) -> str:
    """The plan as a table, the teacher's calls, totals and caveats."""
    from orca_math.plan.memory import GiB

    s = result.sizes
    lines = [f"plan: {config} on {cluster or 'one machine'}",
             f"data: {s.seeds:,} seeds -> {s.problems:,} problems, {s.practiced:,} practiced a round, "
             f"{s.eval_problems:,} eval problems"
             + (f"; student {result.shape.params / 1e9:.2f}B parameters" if result.shape else ""), ""]
    head = f"{'stage':<14} {'where':<13} {'work':>5} {'GPUs':>5} {'GiB/GPU est/cap':>16} {'Mtokens':>9} " \
           f"{'hours':>7} {'GPU-h':>8} {'node $':>9} {'calls':>10} {'API $':>9}  notes"
    lines += [head, "-" * len(head)]
    for st in result.stages:
        mem = ""
        if st.memory is not None:
            cap = f"{st.memory.capacity / GiB:.1f}" if st.memory.capacity else "?"
            mem = f"{st.memory.total / GiB:.1f}/{cap}"
        lines.append(f"{st.name:<14} {st.where:<13} {st.workers or '':>5} {st.gpus or '':>5} {mem:>16} "
                     f"{st.tokens / 1e6:>9.1f} {st.hours:>7.1f} {st.gpu_hours:>8.1f} {st.cost:>9,.0f} "
                     f"{st.calls:>10,.0f} {st.api_cost:>9,.0f}  {st.note}")
    t = result.totals()
    gpu_hours = ", ".join(f"{h:,.0f} {gpu}-hours" for gpu, h in t["gpu_hours"].items()) or "no GPU time"
    lines += ["", f"totals: {gpu_hours}; node time ${t['gpu_cost']:,.0f}; teacher {t['teacher_calls']:,.0f} calls "
                  f"${t['api_cost']:,.0f}; all ${t['cost']:,.0f}; ~{t['hours']:,.1f} hours stage after stage"]
    memory = [f"  {st.name}: {st.memory.describe()}" for st in result.stages if st.memory is not None]
    if memory:
        lines += ["", "memory per GPU (GiB):", *memory]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)
