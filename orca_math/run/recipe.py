"""``orca-math run``: the whole recipe, resumable, as one declared list of stages.

[student] -> [world] -> seeds -> [generate] -> [solve] -> [eval-M0] -> sft (M1) -> eval-M1 ->
for each round k: practice-k -> judge-k -> prefs-k -> dpo|kto|rft-k (M_{k+1}) -> eval-M{k+1}
-> [sft-control -> eval-M1-sft-control]. Then the results table.

:func:`recipe` builds that list; :class:`~orca_math.common.runner.Runner` runs it, skipping
what finished, resuming what was interrupted and redoing what changed (one signature per stage,
see ``common/runner.py``). Every stage writes under ``RUN_DIR`` and records itself in
``RUN_DIR/manifest.json``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from orca_math.common.config import resolve_config_path
from orca_math.common.runner import Runner, Stage
from orca_math.evaluate.stage import eval_stage
from orca_math.generate.stage import generate_stage, solve_stage
from orca_math.judge.stage import judge_stage
from orca_math.practice.stage import practice_stage
from orca_math.prefs.stage import prefs_stage, shuffled
from orca_math.run.config import StageConfigs
from orca_math.run.results import write_results
from orca_math.seeds.config import SeedsConfig
from orca_math.seeds.stage import seeds_stage
from orca_math.tiny_model.stage import student_stage
from orca_math.train.stage import control_stage, preference_stage, sft_stage
from orca_math.world.stage import world_paths, world_stage

TRAINING_DATA = {"kto": "kto.parquet", "dpo": "pairs.parquet", "rft": "positives.parquet"}


def recipe(cfgs: StageConfigs, run_dir: Path) -> list[Stage]:
    """Every stage ``cfgs`` asks for, in the order they run."""
    run, algo, models = cfgs.run, cfgs.run.preference_algo, run_dir / "models"
    stages: list[Stage] = []

    def add(stage: Stage, after: tuple[str, ...] = (), frees: tuple[str, ...] = ()) -> None:
        stages.append(replace(stage, after=after, frees=frees))

    # Training frees the judge's replicas and the engine hosts for its workers. In the driver (local
    # mode) it asks Ray for no CPUs: the judge stays up the whole run (one start, not 12-14 s per judge
    # and eval stage on a 2-core CPU) and only hosts on GPUs go. A host serves an eval and the next practice.
    in_driver = cfgs.sft.scaling.in_process and cfgs.pref_train.scaling.in_process
    training = ("gpu_engines",) if in_driver else ("engines", "judge")
    judge_teacher = cfgs.teacher if cfgs.judge.method != "exact" else None
    judging = ("gpu_engines",) if judge_teacher is not None else ()  # an LLM judge's hours: idle GPUs, billed
    eval_cfg, world = cfgs.eval, (("world",) if run.world else ())  # a new world re-evaluates every model

    m0, student = (models / "M0", ("student",)) if run.student == "tiny" else (run.student, ())  # or an HF id/folder
    if student:
        add(student_stage(cfgs.tiny_model, m0))
    spec = run.problems or run.seeds  # the problem set SFT and practice use
    if run.world:
        train, test = world_paths(run_dir / "world")
        add(world_stage(cfgs.world, run_dir / "world"))
        spec, eval_cfg = str(train), eval_cfg.model_copy(update={"data": str(test)})
    add(seeds_stage(SeedsConfig(seeds=spec, seed_limit=run.seed_limit, problems=run.problems), run_dir / "seeds"),
        after=world)
    problems, last = run_dir / "seeds" / "problems.parquet", ("seeds",)
    if run.generate:
        gen_cfg = cfgs.generate.model_copy(update={"seeds": str(problems), "limit": None})
        add(generate_stage(gen_cfg, run_dir / "generate", progress=False), after=last)
        problems, last = run_dir / "generate" / "problems", ("generate",)
    if run.solve:
        solve_cfg = cfgs.solve.model_copy(update={"data": str(problems), "limit": None})
        add(solve_stage(solve_cfg, run_dir / "solve", progress=False), after=last)
        problems, last = run_dir / "solve" / "problems", ("solve",)

    def evaluate(label: str, model: Path | str, after: tuple[str, ...]) -> None:
        add(eval_stage(eval_cfg, run_dir / "eval" / label, model=model, name=f"eval-{label}",
                       serve_cfg=cfgs.serve.judge, teacher_cfg=judge_teacher), after=after + world)

    if run.eval_base:
        evaluate("M0", m0, student)
    add(sft_stage(cfgs.sft, models / "M1", model=m0, data=problems), after=student + last, frees=training)
    evaluate("M1", models / "M1", ("sft",))

    # Fresh rounds each practice the next `limit` problems; otherwise every round practices round 1's.
    practice = cfgs.practice.model_copy(update={"limit": run.practice_limit or cfgs.practice.limit})
    fresh = bool(run.practice_fresh and practice.limit)
    model, model_stage = models / "M1", "sft"
    for k in range(1, run.rounds + 1):  # M_k practices, is judged, preferences are built, M_k -> M_{k+1}
        rd, nxt = run_dir / f"round{k}", models / f"M{k + 1}"
        offset = practice.offset + (k - 1) * practice.limit if fresh else practice.offset
        add(practice_stage(practice.model_copy(update={"offset": offset}), rd / "practice", model=model,
                           problems=problems, name=f"practice-{k}", model_name=f"M{k}"), after=(model_stage,) + last)
        add(judge_stage(cfgs.judge, rd / "judge", samples=rd / "practice" / "samples.parquet", problems=problems,
                        serve_cfg=cfgs.serve.judge, teacher_cfg=judge_teacher, name=f"judge-{k}"),
            after=(f"practice-{k}",), frees=judging)
        # A shuffled round's tasks each ask for a CPU: the hosts' CPUs must be free. A round of one
        # partition asks for none, and the hosts serve the next eval without a restart.
        samples = practice.limit * practice.decoding.n if practice.limit else None
        add(prefs_stage(cfgs.prefs, rd / "prefs", problems=problems, samples=rd / "practice" / "samples.parquet",
                        judgments=rd / "judge" / "judgments.parquet", round_k=k, name=f"prefs-{k}"),
            after=(f"judge-{k}",), frees=("engines",) if shuffled(samples, cfgs.prefs) else ())
        add(preference_stage(cfgs.pref_train, nxt, algo=algo, model=model, data=rd / "prefs" / TRAINING_DATA[algo],
                             name=f"{algo}-{k}"), after=(f"prefs-{k}", model_stage), frees=training)
        evaluate(f"M{k + 1}", nxt, (f"{algo}-{k}",))
        model, model_stage = nxt, f"{algo}-{k}"

    if run.sft_control and run.rounds:
        # After RFT rounds (SFT too) the control keeps their trainer settings: the data is the only difference.
        rounds = [f"{algo}-{k}" for k in range(1, run.rounds + 1)]
        data = [problems] if run.sft_control_data == "set" else \
            [run_dir / f"round{k}" / "practice" / "problems.parquet" for k in range(1, (run.rounds if fresh else 1) + 1)]
        add(control_stage(cfgs.pref_train if algo == "rft" else cfgs.sft, models / "M1-sft-control",
                          model=models / "M1", data=data, rounds=rounds, rounds_cfg=cfgs.pref_train, algo=algo,
                          merged=run_dir / "sft-control" / "problems.parquet"),
            after=("sft",) + last + tuple(rounds), frees=training)
        evaluate("M1-sft-control", models / "M1-sft-control", ("sft-control",))
    return stages


def planned_stages(cfgs: StageConfigs) -> list[str]:
    """The names of the stages ``run_pipeline`` runs for ``cfgs``, in order."""
    return [s.name for s in recipe(cfgs, Path("RUN_DIR"))]


def run_pipeline(config: str | Path, run_dir: str | Path, overrides: dict[str, Any] | None = None,
                 on_event: Callable[[str, str, dict], None] | None = None) -> list[dict]:
    """Run (or resume) the recipe; return the results rows ``{stage, model, accuracy, n, results}``.

    ``on_event(event, stage, entry)`` hears of every stage's start, end and skip."""
    from orca_math.common.ray_runtime import ensure_ray
    from orca_math.common.sampling.hosts import release_engines
    from orca_math.judge.serve_judge import release_judge

    config = resolve_config_path(config)
    cfgs = StageConfigs.load(config, overrides)
    run_dir = Path(run_dir).resolve()  # Ray workers run in other folders: paths must not be relative
    run_dir.mkdir(parents=True, exist_ok=True)
    from orca_math.plan.core import check_runnable

    check_runnable(cfgs, run_dir, config)  # what `orca-math plan` refuses, refused before anything starts
    runner = Runner(run_dir, export_metrics=True, on_event=on_event)
    runner.manifest.data["config_file"] = str(config)
    ensure_ray()
    stages = recipe(cfgs, run_dir)
    try:
        runner.run_all(stages)
    finally:
        release_judge()
        release_engines()

    results = []
    control = "M1+SFT (control)" if cfgs.run.sft_control_data == "set" else "M1+SFT on practiced problems (control)"
    for stage in (s for s in stages if s.name.startswith("eval-")):
        e = runner.manifest.get(stage.name)
        label = stage.name.removeprefix("eval-")
        results.append({"stage": stage.name, "model": control if "control" in label else label,
                        "accuracy": e["accuracy"], "n": e.get("rows_in", 0),
                        "results": (e.get("outputs") or {}).get("results")})
    metric = "world-test pass@1" if cfgs.run.world else "GSM8K pass@1"
    md = write_results(results, run_dir, f"orca-math run: {Path(config).name}", metric)
    print("\n" + md)
    print(f"results: {run_dir / 'results.md'}, {run_dir / 'results.json'}, {run_dir / 'results.png'}")
    return results
