"""``orca-math run``: the whole recipe, resumable, as one command.

[world] -> seeds -> [generate] -> [solve] -> SFT (M1) -> eval -> for each round k:
practice -> judge -> prefs -> DPO|KTO (M_{k+1}) -> eval -> [equal-compute SFT control -> eval].
Then the results table.

Every stage writes under ``RUN_DIR`` and records itself in ``RUN_DIR/manifest.json``; see
``plan.py`` for what a rerun skips, resumes or redoes.
"""

from __future__ import annotations

import hashlib
import json
import math
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orca_math.config import ConfigError, StageConfig, load_stage_config, resolve_config_path
from orca_math.evaluate.stage import EvalConfig
from orca_math.judge.config import JudgeConfig
from orca_math.manifest import RunManifest
from orca_math.pipeline import metrics
from orca_math.pipeline.config import RunConfig, SeedsStageConfig
from orca_math.pipeline.plan import Action, fingerprint, plan_stage, prepare_stage
from orca_math.pipeline.results import write_results
from orca_math.practice.stage import PracticeConfig
from orca_math.preferences.build import PreferenceConfig
from orca_math.teacher.config import TeacherConfig
from orca_math.tiny_model import TinyModelConfig, build_tiny_model
from orca_math.world.teacher import load_teacher_config

log = logging.getLogger(__name__)


@dataclass
class StageConfigs:
    """Every stage's config, read from one YAML file."""

    run: RunConfig
    tiny_model: TinyModelConfig
    eval: EvalConfig
    sft: StageConfig
    practice: PracticeConfig
    judge: JudgeConfig
    serve: StageConfig
    teacher: StageConfig  # TeacherConfig, or the world's ProceduralTeacherConfig
    prefs: PreferenceConfig
    pref_train: StageConfig
    generate: StageConfig | None = None
    solve: StageConfig | None = None
    world: StageConfig | None = None

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "StageConfigs":
        from orca_math.serve_cli import ServeConfig
        from orca_math.train.config import CONFIG_CLASSES, SFTTrainConfig

        run = load_stage_config(RunConfig, path, "run", overrides)
        pref_cls = CONFIG_CLASSES[run.preference_algo]
        cfgs = cls(
            run=run,
            tiny_model=load_stage_config(TinyModelConfig, path, "tiny_model"),
            eval=load_stage_config(EvalConfig, path, "eval"),
            sft=load_stage_config(SFTTrainConfig, path, "sft"),
            practice=load_stage_config(PracticeConfig, path, "practice"),
            judge=load_stage_config(JudgeConfig, path, "judge"),
            serve=load_stage_config(ServeConfig, path, "serve"),
            teacher=load_teacher_config(path),
            prefs=load_stage_config(PreferenceConfig, path, "prefs"),
            pref_train=load_stage_config(pref_cls, path, run.preference_algo),
        )
        if run.generate or run.solve:
            from orca_math.agents.config import GenerateConfig, SolveStageConfig, load_with_teacher

            cfgs.generate = load_with_teacher(GenerateConfig, path, "generate")
            cfgs.solve = load_with_teacher(SolveStageConfig, path, "solve")
        if run.world:
            from orca_math.world.generate import WorldConfig

            cfgs.world = load_stage_config(WorldConfig, path, "world")
        # Evaluation is judged like practice: the run's judge section applies to both.
        cfgs.eval = cfgs.eval.model_copy(update={"judge": cfgs.judge})
        if run.seed is not None:
            cfgs.reseed(run.seed)
        if cfgs.judge.method != "exact" and not isinstance(cfgs.teacher, TeacherConfig):
            raise ConfigError(Path(path), "judge.method",
                              f"{cfgs.judge.method!r} asks the teacher endpoint; the procedural teacher has none: use exact")
        return cfgs

    def reseed(self, seed: int) -> None:
        """Give every seeded section ``seed``: the world, the teacher, the init, data order, sampling."""
        with_seed = lambda cfg: cfg.model_copy(update={"seed": seed}) if cfg is not None else None  # noqa: E731
        self.tiny_model, self.sft, self.pref_train, self.prefs = map(
            with_seed, (self.tiny_model, self.sft, self.pref_train, self.prefs))
        if self.world is not None:
            self.world = with_seed(self.world)
        if hasattr(self.teacher, "seed"):
            self.teacher = with_seed(self.teacher)
        if self.generate is not None and hasattr(self.generate.teacher, "seed"):
            self.generate = self.generate.model_copy(update={"teacher": with_seed(self.generate.teacher)})
        self.practice = self.practice.model_copy(
            update={"decoding": self.practice.decoding.model_copy(update={"seed": seed})})


@dataclass
class PipelineRunner:
    """Runs stages in order, skipping or resuming each as its manifest entry allows."""

    run_dir: Path
    manifest: RunManifest
    fingerprints: dict[str, str] = field(default_factory=dict)
    # Told of each stage as it starts ("start"), ends ("end", with its manifest entry) or is skipped
    # ("skip"): how `orca-math demo` prints one line per stage.
    on_event: Callable[[str, str, dict], None] | None = None

    def _tell(self, event: str, name: str) -> None:
        if self.on_event is not None:
            self.on_event(event, name, self.manifest.get(name) or {})

    def stage(self, name: str, cfg: StageConfig, upstream: list[str], inputs: dict[str, str],
              out_dir: Path, body: Callable[[bool], Any]) -> None:
        """Run ``body(resume)`` for stage ``name`` unless it already finished with this fingerprint."""
        # Paths inside the run folder count relative to it, so a copied or moved run folder resumes.
        rel = lambda text: text.replace(str(self.run_dir), "RUN_DIR")  # noqa: E731
        cfg_hash = hashlib.sha256(rel(json.dumps(cfg.model_dump(mode="json"), sort_keys=True)).encode()).hexdigest()
        fp = fingerprint(name, cfg_hash[:16], [self.fingerprints[u] for u in upstream],
                         {k: rel(v) for k, v in inputs.items()})
        self.fingerprints[name] = fp
        plan = plan_stage(self.manifest, name, fp)
        if plan.action is Action.SKIP:
            log.info("[%s] done already (fingerprint %s): skipped", name, fp)
            self._tell("skip", name)
            return
        log.info("[%s] %s -> %s", name, "resuming" if plan.action is Action.RESUME else "running", out_dir)
        prepare_stage(self.manifest, plan, out_dir)
        metrics.stage_started(name)
        self._tell("start", name)
        started = time.perf_counter()
        body(plan.action is Action.RESUME)
        entry = self.manifest.get(name) or {}
        if entry.get("status") != "done":  # bodies that do not record themselves
            self.manifest.update(name, status="done", wall_s=round(time.perf_counter() - started, 3))
        metrics.stage_finished(name, self.manifest.get(name))
        log.info("[%s] finished in %.1fs", name, time.perf_counter() - started)
        self._tell("end", name)


def _problems_stage(r: PipelineRunner, cfgs: StageConfigs) -> tuple[str, Path]:
    """The problem set SFT and practice use: the seeds as given, or AgentInstruct's output."""
    run = cfgs.run
    spec = run.problems or run.seeds
    upstream = []
    if run.world:
        from orca_math.pipeline.world_data import run_world_data, world_paths

        world_dir = r.run_dir / "world"
        r.stage("world", cfgs.world, [], {}, world_dir,
                lambda resume: run_world_data(cfgs.world, world_dir, r.manifest, stage="world"))
        spec, upstream = str(world_paths(world_dir)[0]), ["world"]
    seeds_dir = r.run_dir / "seeds"
    seeds_cfg = SeedsStageConfig.of(run)

    def read_seeds(resume: bool) -> None:
        from orca_math.records import write_parquet, write_quarantine
        from orca_math.schema import PROBLEM
        from orca_math.seeds import read_problems

        with r.manifest.stage("seeds", seeds_cfg, {"seeds": spec}) as entry:
            out = read_problems(spec, limit=run.seed_limit, stage="seeds")
            write_parquet(out.rows, PROBLEM, seeds_dir / "problems.parquet")
            write_quarantine(out.quarantined, seeds_dir / "quarantine.parquet")
            entry.update(outputs={"problems": str(seeds_dir / "problems.parquet")}, **out.counts())

    r.stage("seeds", seeds_cfg, upstream, {"seeds": spec, "limit": str(run.seed_limit)}, seeds_dir, read_seeds)
    problems, last = seeds_dir / "problems.parquet", "seeds"
    if run.generate:
        from orca_math.agents.pipeline import run_generate

        gen_dir = r.run_dir / "generate"
        gen_cfg = cfgs.generate.model_copy(update={"seeds": str(problems), "limit": None})
        r.stage("generate", gen_cfg, [last], {}, gen_dir,
                lambda resume: _record(r, "generate", run_generate(gen_cfg, gen_dir, progress=False)))
        problems, last = gen_dir / "problems", "generate"
    if run.solve:
        from orca_math.agents.pipeline import run_solve

        solve_dir = r.run_dir / "solve"
        solve_cfg = cfgs.solve.model_copy(update={"data": str(problems), "limit": None})
        r.stage("solve", solve_cfg, [last], {}, solve_dir,
                lambda resume: _record(r, "solve", run_solve(solve_cfg, solve_dir, progress=False)))
        problems, last = solve_dir / "problems", "solve"
    return last, problems


def _record(r: PipelineRunner, name: str, entry: dict) -> None:
    """Copy what a stage that keeps its own manifest (generate, solve) recorded into the run's."""
    r.manifest.update(name, **{k: v for k, v in entry.items() if k not in ("stage", "status", "fingerprint")})


def _eval_stage(r: PipelineRunner, cfgs: StageConfigs, label: str, model: Path, upstream: str) -> str:
    from orca_math.evaluate.run import run_eval

    name = f"eval-{label}"
    out = r.run_dir / "eval" / label
    # On the world the eval set is a stage's output: a new world re-evaluates every model.
    upstreams = [upstream] + (["world"] if cfgs.run.world else [])
    teacher = cfgs.teacher if cfgs.judge.method != "exact" else None

    def body(resume: bool) -> None:
        from orca_math.judge.serve_judge import release_judge

        try:
            run_eval(str(model), cfgs.eval, out, stage=name, manifest=r.manifest, serve_cfg=cfgs.serve.judge,
                     teacher_cfg=teacher)
        finally:
            release_judge()  # training comes next: its workers need the judge replicas' CPUs

    r.stage(name, cfgs.eval, upstreams, {"model": str(model)}, out, body)
    return name


def planned_stages(run: RunConfig) -> list[str]:
    """The stages ``run_pipeline`` runs for ``run``, in order (for progress and time estimates)."""
    algo = run.preference_algo
    names = ["student"] if run.student == "tiny" else []
    names += (["world"] if run.world else []) + ["seeds"] + (["generate"] if run.generate else [])
    names += (["solve"] if run.solve else []) + (["eval-M0"] if run.eval_base else []) + ["sft", "eval-M1"]
    for k in range(1, run.rounds + 1):
        names += [f"practice-{k}", f"judge-{k}", f"prefs-{k}", f"{algo}-{k}", f"eval-M{k + 1}"]
    if run.sft_control and run.rounds:
        names += ["sft-control", "eval-M1-sft-control"]
    return names


def run_pipeline(config: str | Path, run_dir: str | Path, overrides: dict[str, Any] | None = None,
                 on_event: Callable[[str, str, dict], None] | None = None) -> list[dict]:
    """Run (or resume) the recipe; return the results rows ``{stage, model, accuracy, n}``.

    ``on_event(event, stage, entry)`` hears of every stage's start, end and skip."""
    from orca_math.ray_runtime import ensure_ray
    from orca_math.train.run import run_preference, run_sft

    config = resolve_config_path(config)
    cfgs = StageConfigs.load(config, overrides)
    run = cfgs.run
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    r = PipelineRunner(run_dir, RunManifest(run_dir / "manifest.json"), on_event=on_event)
    r.manifest.data["config_file"] = str(config)
    ensure_ray()
    models = run_dir / "models"
    evals: list[tuple[str, str]] = []  # (eval stage, model label)

    m0: Path | str = run.student
    if run.student == "tiny":
        m0 = models / "M0"
        r.stage("student", cfgs.tiny_model, [], {}, m0, lambda resume: build_tiny_model(m0, cfgs.tiny_model))
    else:
        r.fingerprints["student"] = fingerprint("student", "", [], {"model": run.student})
    last, problems = _problems_stage(r, cfgs)
    if run.world:
        from orca_math.pipeline.world_data import world_paths

        cfgs.eval = cfgs.eval.model_copy(update={"data": str(world_paths(run_dir / "world")[1])})
    if run.eval_base:
        evals.append((_eval_stage(r, cfgs, "M0", Path(m0), "student"), "M0"))
    m1 = models / "M1"
    r.stage("sft", cfgs.sft, ["student", last], {"model": str(m0), "data": str(problems)}, m1,
            lambda resume: run_sft(m0, problems, m1, cfgs.sft, manifest=r.manifest, resume=resume, stage="sft"))
    evals.append((_eval_stage(r, cfgs, "M1", m1, "sft"), "M1"))

    model, model_stage = m1, "sft"
    practice_cfg = cfgs.practice.model_copy(update={"limit": run.practice_limit or cfgs.practice.limit})
    try:
        for k in range(1, run.rounds + 1):
            rd = run_dir / f"round{k}"
            model, model_stage = _round(r, cfgs, practice_cfg, k, rd, model, model_stage, problems, last,
                                        run_preference, models)
            evals.append((_eval_stage(r, cfgs, f"M{k + 1}", model, model_stage), f"M{k + 1}"))
        if run.sft_control and run.rounds:
            evals.append((_control_stage(r, cfgs, m1, problems, last, models, run_sft), "M1+SFT (control)"))
    finally:
        from orca_math.judge.serve_judge import release_judge

        release_judge()  # evals and judges share the judge app; a run leaves none behind

    results = []
    for stage, label in evals:
        e = r.manifest.get(stage)
        summary_n = e.get("rows_in", 0)
        results.append({"stage": stage, "model": label, "accuracy": e["accuracy"], "n": summary_n,
                        "results": (e.get("outputs") or {}).get("results")})
    metric = "world-test pass@1" if run.world else "GSM8K pass@1"
    md = write_results(results, run_dir, f"orca-math run: {Path(config).name}", metric)
    print("\n" + md)
    print(f"results: {run_dir / 'results.md'}, {run_dir / 'results.json'}, {run_dir / 'results.png'}")
    return results


def _round(r: PipelineRunner, cfgs: StageConfigs, practice_cfg: PracticeConfig, k: int, rd: Path, model: Path,
           model_stage: str, problems: Path, problems_stage: str, run_preference, models: Path) -> tuple[Path, str]:
    """One practice-and-feedback round: M_k -> M_{k+1}."""
    from orca_math.judge.judge_samples import run_judge
    from orca_math.practice.stage import run_practice
    from orca_math.preferences.stage import run_prefs

    algo = cfgs.run.preference_algo
    samples, judgments, prefs = rd / "practice" / "samples.parquet", rd / "judge" / "judgments.parquet", rd / "prefs"
    if cfgs.run.practice_fresh and practice_cfg.limit:
        practice_cfg = practice_cfg.model_copy(update={"offset": (k - 1) * practice_cfg.limit})
    r.stage(f"practice-{k}", practice_cfg, [model_stage, problems_stage], {"model": str(model)}, rd / "practice",
            lambda resume: run_practice(str(model), problems, rd / "practice", practice_cfg,
                                        stage=f"practice-{k}", manifest=r.manifest, model_name=f"M{k}"))
    teacher = cfgs.teacher if cfgs.judge.method != "exact" else None
    r.stage(f"judge-{k}", cfgs.judge, [f"practice-{k}"], {}, rd / "judge",
            lambda resume: run_judge(samples, problems, rd / "judge", cfgs.judge, cfgs.serve.judge, teacher,
                                     stage=f"judge-{k}", manifest=r.manifest))
    r.stage(f"prefs-{k}", cfgs.prefs, [f"judge-{k}"], {}, prefs,
            lambda resume: run_prefs(problems, samples, judgments, prefs, cfgs.prefs, round_k=k,
                                     stage=f"prefs-{k}", manifest=r.manifest))
    data = prefs / {"kto": "kto.parquet", "dpo": "pairs.parquet", "rft": "positives.parquet"}[algo]
    nxt = models / f"M{k + 1}"
    r.stage(f"{algo}-{k}", cfgs.pref_train, [f"prefs-{k}", model_stage], {"model": str(model)}, nxt,
            lambda resume: run_preference(algo, model, data, nxt, cfgs.pref_train, manifest=r.manifest,
                                          resume=resume, stage=f"{algo}-{k}"))
    return nxt, f"{algo}-{k}"


def training_sequences(entry: dict, cfg: StageConfig, algo: str) -> int:
    """Sequences a finished training stage pushed through the policy (forward + backward).

    A DPO example is two sequences (chosen and rejected), a KTO one too (the completion and the
    mismatched completion of its KL estimate); an SFT or RFT example is one.
    """
    per_step = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * cfg.scaling.num_workers
    return entry["metrics"]["global_step"] * per_step * (1 if algo in ("sft", "rft") else 2)


def _control_stage(r: PipelineRunner, cfgs: StageConfigs, m1: Path, problems: Path, problems_stage: str,
                   models: Path, run_sft) -> str:
    """The equal-compute control: M1 trained further with plain SFT on as many sequences as the
    rounds' training used, then evaluated like the round models. After RFT rounds (SFT too) the
    control keeps their trainer settings, so the data is the only difference."""
    algo = cfgs.run.preference_algo
    spent = sum(training_sequences(r.manifest.get(f"{algo}-{k}"), cfgs.pref_train, algo)
                for k in range(1, cfgs.run.rounds + 1))
    sft = cfgs.pref_train if algo == "rft" else cfgs.sft
    per_step = sft.per_device_batch_size * sft.gradient_accumulation_steps * sft.scaling.num_workers
    # Another data order than M1's SFT, so the extra steps see mostly problems M1 has not.
    # The rounds' time caps summed: the control may train as long as all rounds together.
    cap = sft.max_time_s * cfgs.run.rounds if sft.max_time_s else None
    control_cfg = sft.model_copy(update={"max_steps": max(1, math.ceil(spent / per_step)), "seed": sft.seed + 1,
                                         "max_time_s": cap})
    out = models / "M1-sft-control"
    upstream = ["sft", problems_stage] + [f"{algo}-{k}" for k in range(1, cfgs.run.rounds + 1)]
    r.stage("sft-control", control_cfg, upstream, {"model": str(m1), "data": str(problems)}, out,
            lambda resume: run_sft(m1, problems, out, control_cfg, manifest=r.manifest, resume=resume,
                                   stage="sft-control"))
    r.manifest.update("sft-control", control_sequences=spent)
    return _eval_stage(r, cfgs, "M1-sft-control", out, "sft-control")
