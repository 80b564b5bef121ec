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

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from orca_math.common.config import resolve_config_path
from orca_math.common.runner import Runner, Stage, StageContext
from orca_math.run.config import StageConfigs
from orca_math.run.results import write_results

TRAINING_DATA = {"kto": "kto.parquet", "dpo": "pairs.parquet", "rft": "positives.parquet"}


def recipe(cfgs: StageConfigs, run_dir: Path) -> list[Stage]:
    """Every stage ``cfgs`` asks for, in the order they run."""
    from orca_math.common.sampling.hosts import release_engines
    from orca_math.evaluate.stage import eval_stage
    from orca_math.judge.serve_judge import release_judge
    from orca_math.judge.stage import judge_stage
    from orca_math.practice.stage import practice_stage
    from orca_math.prefs.stage import prefs_stage
    from orca_math.seeds.config import SeedsConfig
    from orca_math.seeds.stage import run_seeds
    from orca_math.tiny_model.core import build_tiny_model
    from orca_math.train.stage import preference_stage, sft_stage
    from orca_math.world.stage import world_paths, write_world

    run, algo = cfgs.run, cfgs.run.preference_algo
    models = run_dir / "models"
    stages: list[Stage] = []

    # The student M0: built here (tiny) or named (an HF id / folder, an input of the stages that read it).
    m0: Path | str = run.student
    student = ()
    if run.student == "tiny":
        m0, student = models / "M0", ("student",)

        def build_student(c: StageContext) -> None:
            build_tiny_model(c.out, cfgs.tiny_model)

        stages.append(Stage("student", cfgs.tiny_model, build_student, out=m0))

    # The problem set SFT and practice use: the seeds as given, or AgentInstruct's output.
    spec, last = run.problems or run.seeds, ()
    eval_cfg = cfgs.eval
    if run.world:
        train, test = world_paths(run_dir / "world")
        stages.append(Stage("world", cfgs.world, lambda c: write_world(cfgs.world, {"train": train, "test": test}),
                            out=run_dir / "world"))
        spec, last = str(train), ("world",)
        eval_cfg = eval_cfg.model_copy(update={"data": str(test)})
    seeds_cfg = SeedsConfig(seeds=spec, seed_limit=run.seed_limit, problems=run.problems)
    problems = run_dir / "seeds" / "problems.parquet"
    stages.append(Stage("seeds", seeds_cfg, lambda c: run_seeds(spec, run.seed_limit, c.out), out=run_dir / "seeds",
                        after=last))
    last = ("seeds",)
    if run.generate:
        from orca_math.generate.stage import generate_stage

        gen_cfg = cfgs.generate.model_copy(update={"seeds": str(problems), "limit": None})
        stages.append(replace(generate_stage(gen_cfg, run_dir / "generate", progress=False), after=last))
        problems, last = run_dir / "generate" / "problems", ("generate",)
    if run.solve:
        from orca_math.generate.stage import solve_stage

        solve_cfg = cfgs.solve.model_copy(update={"data": str(problems), "limit": None})
        stages.append(replace(solve_stage(solve_cfg, run_dir / "solve", progress=False), after=last))
        problems, last = run_dir / "solve" / "problems", ("solve",)

    judge_teacher = cfgs.teacher if cfgs.judge.method != "exact" else None

    # Before training, the recipe frees what Ray Train's workers may need: the judge's replicas and
    # the engine hosts. Training in the driver (local mode) asks Ray for no CPUs: then the judge stays
    # up from its first stage to the end of the run (one start instead of one per judge and eval
    # stage, 12-14 s each on a 2-core CPU), and only hosts on GPUs go (the driver may train on its
    # GPU). A host serves an eval and the practice after it (one vLLM import instead of two, 14 s).
    in_driver = cfgs.sft.scaling.in_process and cfgs.pref_train.scaling.in_process

    def after_release(stage: Stage, gpu_engines_only: bool = False, judge: bool = False) -> Stage:
        """``stage``, run once the engine hosts (only those on GPUs) and the judge are gone."""
        def release_then_run(c: StageContext) -> dict:
            release_engines(gpu_only=gpu_engines_only)
            if judge:
                release_judge()
            return stage.run(c)

        return replace(stage, run=release_then_run)

    def trains(stage: Stage) -> Stage:
        return after_release(stage, gpu_engines_only=in_driver, judge=not in_driver)

    def evaluate(label: str, model: Path | str, after: tuple[str, ...]) -> None:
        stage = eval_stage(model, eval_cfg, run_dir / "eval" / label, f"eval-{label}", cfgs.serve.judge, judge_teacher)
        # On the world the eval set is a stage's output: a new world re-evaluates every model.
        stages.append(replace(stage, after=after + (("world",) if run.world else ())))

    if run.eval_base:
        evaluate("M0", m0, student)
    m1 = models / "M1"
    stages.append(trains(replace(sft_stage(m0, problems, m1, cfgs.sft), after=student + last)))
    evaluate("M1", m1, ("sft",))

    # Fresh rounds each practice the next `limit` problems; otherwise every round practices round 1's.
    practice_base = cfgs.practice.model_copy(update={"limit": run.practice_limit or cfgs.practice.limit})
    fresh = bool(run.practice_fresh and practice_base.limit)

    def practice_round(k: int, model: Path, model_stage: str) -> tuple[Path, str]:
        """Round k: M_k practices, the judge marks its samples, preferences are built, M_k -> M_{k+1}."""
        rd, nxt = run_dir / f"round{k}", models / f"M{k + 1}"
        samples, judgments, prefs = rd / "practice" / "samples.parquet", rd / "judge" / "judgments.parquet", rd / "prefs"
        practice_cfg = practice_base
        if fresh:
            practice_cfg = practice_cfg.model_copy(update={"offset": practice_cfg.offset + (k - 1) * practice_cfg.limit})
        judged = replace(judge_stage(samples, problems, rd / "judge", cfgs.judge, cfgs.serve.judge, judge_teacher,
                                     f"judge-{k}"), after=(f"practice-{k}",))
        if judge_teacher is not None:
            # Hours of teacher calls: the sampler GPUs would idle through them, billed.
            judged = after_release(judged, gpu_engines_only=True)
        stages.extend([
            replace(practice_stage(model, problems, rd / "practice", practice_cfg, f"practice-{k}", f"M{k}"),
                    after=(model_stage,) + last),
            judged,
            # A big round's shuffle runs tasks that each ask for a CPU: the hosts' CPUs must be free.
            after_release(replace(prefs_stage(problems, samples, judgments, prefs, cfgs.prefs, k, f"prefs-{k}"),
                                  after=(f"judge-{k}",))),
            trains(replace(preference_stage(algo, model, prefs / TRAINING_DATA[algo], nxt, cfgs.pref_train,
                                            f"{algo}-{k}"), after=(f"prefs-{k}", model_stage))),
        ])
        evaluate(f"M{k + 1}", nxt, (f"{algo}-{k}",))
        return nxt, f"{algo}-{k}"

    model, model_stage = m1, "sft"
    for k in range(1, run.rounds + 1):
        model, model_stage = practice_round(k, model, model_stage)

    if run.sft_control and run.rounds:
        # The equal-compute control: M1 trained further with plain SFT on as many tokens (or
        # sequences) as the rounds' training used. After RFT rounds (SFT too) it keeps their
        # trainer settings, so the data is the only difference.
        sft = cfgs.pref_train if algo == "rft" else cfgs.sft
        rounds = tuple(f"{algo}-{k}" for k in range(1, run.rounds + 1))
        out = models / "M1-sft-control"
        data: list[Path] = [problems]
        if run.sft_control_data == "practiced":
            practiced = range(1, (run.rounds if fresh else 1) + 1)
            data = [run_dir / f"round{k}" / "practice" / "problems.parquet" for k in practiced]
        merged = run_dir / "sft-control" / "problems.parquet"
        stages.append(trains(Stage("sft-control", sft, lambda c: _control(cfgs, sft, m1, data, merged, c), out=out,
                                   after=("sft",) + last + rounds,
                                   inputs={"model": str(m1), "data": ",".join(map(str, data))})))
        evaluate("M1-sft-control", out, ("sft-control",))
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


def training_sequences(entry: dict, cfg, algo: str) -> int:
    """Sequences a finished training stage pushed through the policy (forward + backward).

    A DPO example is two sequences (chosen and rejected), a KTO one too (the completion and the
    mismatched completion of its KL estimate); an SFT or RFT example is one.
    """
    per_step = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * cfg.scaling.num_workers
    return entry["metrics"]["global_step"] * per_step * (1 if algo in ("sft", "rft") else 2)


def _control(cfgs: StageConfigs, sft, m1: Path, data: list[Path], merged: Path, c: StageContext) -> dict:
    import pyarrow.parquet as pq

    from orca_math.common.records import atomic_path
    from orca_math.common.schema import PROBLEM
    from orca_math.train.stage import sft_stage

    algo = cfgs.run.preference_algo
    rounds = [c.manifest.get(f"{algo}-{k}") for k in range(1, cfgs.run.rounds + 1)]
    spent = sum(training_sequences(e, cfgs.pref_train, algo) for e in rounds)
    per_step = sft.per_device_batch_size * sft.gradient_accumulation_steps * sft.scaling.num_workers
    # Equal compute is equal tokens where the rounds counted theirs (SFT-style rounds): the
    # rounds' positives are shorter than the SFT set's problems (measured: the same 266 x 16
    # sequences held 1.2x the rounds' tokens), so as many sequences would give the control more.
    # Steps then only bound it (twice the sequences' steps: the tokens run out first, and the
    # schedule is fitted to them). Another data order than M1's SFT, so the extra steps see
    # mostly problems M1 has not. No time cap: the rounds already kept to theirs, and a control cut
    # short by the clock (measured: 164 of 257 steps on a CPU where its steps were slower) would
    # not be the equal-compute arm it is reported as.
    counted = [e["metrics"].get("num_input_tokens_seen") for e in rounds]
    tokens = sum(counted) if algo == "rft" and all(counted) else None
    steps = max(1, math.ceil(spent / per_step))
    control_cfg = sft.model_copy(update={"max_steps": 2 * steps if tokens else steps, "max_tokens": tokens,
                                         "seed": sft.seed + 1, "max_time_s": None})
    problems = data[0]
    if len(data) > 1:  # the rounds' practiced problems, one file per round: the control reads them as one set
        problems = merged
        merged.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(merged) as tmp, pq.ParquetWriter(tmp, PROBLEM) as writer:  # a batch in memory at a time
            for batch in (b for path in data for b in pq.ParquetFile(path).iter_batches(batch_size=8192)):
                writer.write_batch(batch)
    return {**sft_stage(m1, problems, c.out, control_cfg, c.name).run(c), "control_sequences": spent,
            "control_tokens": tokens,
            "config": control_cfg.model_dump(mode="json")}

