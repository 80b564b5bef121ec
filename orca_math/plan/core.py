"""What a run will take, before it starts: per stage the node type, workers, GPU memory, tokens,
hours and dollars, and every reason it cannot run (:func:`infeasible`).

Pure arithmetic over the loaded configs (:class:`~orca_math.run.config.StageConfigs`), a parsed
cluster file (``cluster.yaml`` as a dict, or None on one machine) and the ``plan:`` assumptions
(:class:`~orca_math.plan.config.PlanConfig`). No Ray, no GPU, no download. The stage list is the
recipe's own (``run/recipe.py`` ``planned_stages``), so the plan names what the run will run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from orca_math.plan.config import PlanConfig
from orca_math.plan.memory import (
    GiB,
    MemoryEstimate,
    ModelShape,
    PlanError,
    engine_memory,
    student_shape,
    training_memory,
)

BUILTIN_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory"}
KNOWN_SETS = {"gsm8k-train": 7473, "gsm8k-test": 1319}
BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")  # what `ray up` leaves on the head node


# ------------------------------------------------------------------------------------ the cluster


@dataclass(frozen=True)
class NodeType:
    """A node type of the cluster file, with the GPU its instance type has and its price."""

    name: str
    resources: dict[str, float]
    max_workers: int
    instance_type: str | None = None
    gpu: str | None = None
    gpu_memory_gib: float | None = None
    price_per_hour: float | None = None

    def holds(self, request: dict[str, float]) -> int:
        """How many copies of ``request`` one node of this type holds."""
        wanted = {k: v for k, v in request.items() if v > 0}
        if not wanted:
            return 0
        return min(math.floor(self.resources.get(k, 0) / v + 1e-9) for k, v in wanted.items())


def load_cluster(path: str | Path | None = None) -> dict | None:
    """A cluster file as a dict: ``path``, else the head node's ``~/ray_bootstrap_config.yaml`` where
    `ray up` left one, else None (one machine)."""
    import yaml

    file = Path(path).expanduser() if path else BOOTSTRAP_CONFIG.expanduser()
    if not file.is_file():
        if path:
            raise PlanError(f"{path}: no such cluster file")
        return None
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("available_node_types"), dict):
        raise PlanError(f"{file}: not a Ray cluster file (no available_node_types mapping)")
    return data


def node_types(cluster: dict, plan: PlanConfig, notes: list[str] | None = None) -> list[NodeType]:
    """The cluster file's node types, each with its GPU (instance family or ``plan.node_gpu``) and price;
    a GPU type plan does not know is a line in ``notes`` (that node type's memory goes unchecked)."""
    out = []
    notes = [] if notes is None else notes
    for name, t in cluster["available_node_types"].items():
        resources = {k: float(v) for k, v in (t.get("resources") or {}).items()}
        instance = (t.get("node_config") or {}).get("InstanceType")
        gpu = plan.node_gpu.get(name)
        if gpu is None and instance and resources.get("GPU"):
            prefixes = sorted((p for p in plan.instance_gpus if instance.startswith(p)), key=len, reverse=True)
            gpu = plan.instance_gpus[prefixes[0]] if prefixes else None
        if resources.get("GPU") and gpu is None:
            notes.append(f"node type {name} ({instance or 'no InstanceType'}) has GPUs of a type plan does not know, "
                         f"so memory there is not checked: --set plan.node_gpu.{name}=A100-40GB (or another of "
                         f"{sorted(plan.gpu_memory_gib)})")
        if gpu is not None and gpu not in plan.gpu_memory_gib:
            notes.append(f"node type {name}: GPU {gpu} has no memory figure, so memory there is not checked: "
                         f"--set plan.gpu_memory_gib.{gpu}=GIB")
            gpu = None
        price = plan.node_price_per_hour.get(name, plan.instance_price_per_hour.get(instance or ""))
        max_workers = 1 if name == cluster.get("head_node_type") else int(t.get("max_workers", 0))
        out.append(NodeType(name, resources, max_workers, instance, gpu,
                            plan.gpu_memory_gib.get(gpu) if gpu else None, price))
    return out


_MOUNT = re.compile(r"\bmount\s+(?:-\S+\s+\S+\s+)*-t\s+(nfs4?|efs|lustre|fuse\.\S+)\b")


def shared_roots(cluster: dict | None, plan: PlanConfig) -> list[str]:
    """Paths every node sees: the targets of NFS/EFS/Lustre mounts in the setup commands (as the
    container sees them where docker's ``-v HOST:CONTAINER`` maps them), and ``plan.shared_paths``."""
    roots = list(plan.shared_paths)
    if not cluster:
        return roots
    commands = [c for key in ("initialization_commands", "setup_commands", "head_setup_commands",
                              "worker_setup_commands") for c in (cluster.get(key) or [])]
    hosts = []
    for command in commands:
        for segment in re.split(r";|&&|\|\||\bthen\b|\bfi\b|\n", command):
            if _MOUNT.search(segment):
                hosts.append(segment.split()[-1].strip("'\""))
    docker = cluster.get("docker") or {}
    if not docker.get("image"):
        return roots + hosts
    volumes = dict(re.findall(r"-v\s+([^:\s]+):([^:\s]+)", " ".join(docker.get("run_options") or [])))
    return roots + [volumes[h] for h in hosts if h in volumes]


def cluster_placeholders(cluster: dict | None) -> list[str]:
    """Setup commands still holding a placeholder (``CHANGE-ME``): the shared file system it names is not set."""
    if not cluster:
        return []
    return [c for key in ("initialization_commands", "setup_commands") for c in (cluster.get(key) or [])
            if "CHANGE-ME" in str(c)]


# ----------------------------------------------------------------------------------- data sizes


def count_rows(spec: str) -> int | None:
    """Rows of a known set or a local JSONL/Parquet file or folder; None where it cannot be told offline."""
    if spec in KNOWN_SETS:
        return KNOWN_SETS[spec]
    path = Path(spec)
    if not path.exists():
        return None
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    rows = 0
    for f in files:
        if f.suffix == ".jsonl":
            with open(f, "rb") as fh:
                rows += sum(1 for line in fh if line.strip())
        elif f.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows += pq.ParquetFile(f).metadata.num_rows
    return rows


@dataclass
class Sizes:
    """How much data the run moves: seeds, problems, practiced problems per round, eval problems."""

    seeds: int
    problems: int
    practiced: int
    eval_problems: int
    notes: list[str] = field(default_factory=list)


def data_sizes(cfgs: Any, plan: PlanConfig) -> Sizes:
    """Seeds, problems and the rest, from the plan's overrides, else the sets the configs name."""
    run, notes = cfgs.run, []
    seeds = plan.seeds or count_rows(run.problems or run.seeds)
    if seeds is None:
        notes.append(f"cannot count {run.problems or run.seeds!r} offline: assumed 7,473 seeds (--set plan.seeds=N)")
        seeds = KNOWN_SETS["gsm8k-train"]
    if run.seed_limit:
        seeds = min(seeds, run.seed_limit)
    problems = plan.problems or round(seeds * (plan.problems_per_seed if run.generate else 1))
    practiced = min(problems, run.practice_limit or cfgs.practice.limit or problems)
    eval_problems = plan.eval_problems or count_rows(cfgs.eval.data)
    if eval_problems is None:
        notes.append(f"cannot count eval set {cfgs.eval.data!r} offline: assumed 1,319 (--set plan.eval_problems=N)")
        eval_problems = KNOWN_SETS["gsm8k-test"]
    if cfgs.eval.limit:
        eval_problems = min(eval_problems, cfgs.eval.limit)
    return Sizes(seeds, problems, practiced, eval_problems, notes)


# ---------------------------------------------------------------------------------- the stages


@dataclass
class StagePlan:
    """One stage of the plan."""

    name: str
    where: str                       # node type, "head" (CPU) or "teacher API"
    workers: int = 0                 # training workers or vLLM engines
    gpus: int = 0                    # GPUs billed while it runs (whole nodes)
    memory: MemoryEstimate | None = None
    tokens: float = 0.0              # tokens processed (training: padded, x the algorithm's compute factor)
    hours: float = 0.0
    gpu_hours: float = 0.0
    gpu: str | None = None
    cost: float = 0.0                # USD of node time
    calls: float = 0.0               # teacher API calls
    api_tokens: tuple[float, float] = (0.0, 0.0)  # (input, output)
    api_cost: float = 0.0
    note: str = ""


@dataclass
class Plan:
    """Every stage's plan, what cannot run, and the caveats."""

    stages: list[StagePlan]
    problems: list[str]
    notes: list[str]
    sizes: Sizes
    shape: ModelShape | None

    def totals(self) -> dict[str, Any]:
        """GPU-hours by GPU type, node and API dollars, teacher calls, wall hours (stages in sequence)."""
        by_gpu: dict[str, float] = {}
        for s in self.stages:
            if s.gpu:
                by_gpu[s.gpu] = by_gpu.get(s.gpu, 0.0) + s.gpu_hours
        gpu_cost = sum(s.cost for s in self.stages)
        api_cost = sum(s.api_cost for s in self.stages)
        return {"gpu_hours": by_gpu, "gpu_cost": gpu_cost, "api_cost": api_cost, "cost": gpu_cost + api_cost,
                "teacher_calls": sum(s.calls for s in self.stages),
                "hours": sum(s.hours for s in self.stages)}


def capacity_of(nodes: list[NodeType]):
    """The cluster file's node types as the :class:`~orca_math.common.capacity.Capacity` the stages check
    against at run time (each type at its ``max_workers``, the head once)."""
    from orca_math.common.capacity import Capacity, NodeShape

    return Capacity((), tuple(NodeShape(n.name, n.resources, n.max_workers) for n in nodes), autoscaling=True)


def _use_gpu(setting: Any, nodes: list[NodeType], plan: PlanConfig) -> bool:
    from orca_math.common.hardware import resolve_use_gpu

    if not nodes:
        return plan.gpu is not None if setting == "auto" else bool(setting)
    return resolve_use_gpu(setting, capacity_of(nodes))


def _placement(what: str, request: dict[str, float], count: int, nodes: list[NodeType], settings: str,
               problems: list[str]) -> list[NodeType]:
    """The node types one ``request`` fits on; the run-time feasibility check's reason in ``problems``
    when ``count`` of them can never be placed."""
    from orca_math.common.capacity import ClusterTooSmallError, check_feasible

    if not nodes:
        return []
    try:
        check_feasible(what, request, count, settings, capacity_of(nodes))
    except ClusterTooSmallError as e:
        problems.append(str(e))
    return [n for n in nodes if n.holds(request)]


def _worker_request(cfg: Any, on_gpu: bool) -> dict[str, float]:
    """What one Ray Train worker reserves (Ray Train's default: 1 CPU, and 1 GPU with use_gpu)."""
    return dict(cfg.scaling.resources_per_worker or ({"CPU": 1.0, "GPU": 1.0} if on_gpu else {"CPU": 1.0}))


def _billed(fit: list[NodeType], request: dict[str, float], count: int) -> tuple[NodeType | None, int, float]:
    """(node type, GPUs billed, USD per hour) for ``count`` copies packed onto whole nodes of the first type;
    without a cluster file, the GPUs the copies ask for, at no known price."""
    if not fit:
        return None, int(count * request.get("GPU", 0)), 0.0
    node = fit[0]
    nodes = math.ceil(count / max(node.holds(request), 1))
    return node, nodes * int(node.resources.get("GPU", 0)), nodes * (node.price_per_hour or 0.0)


def _check_memory(stage: str, estimate: Callable[[str], MemoryEstimate], fit: list[NodeType], plan: PlanConfig,
                  problems: list[str], notes: list[str]) -> MemoryEstimate | None:
    """The stage's estimate on every GPU type it may land on (``estimate(gpu)``), a reason per misfit;
    returns the one on the smallest GPU. An engine whose full batch does not fit still runs (vLLM
    preempts sequences when its KV cache is full): a note, unless one max_model_len sequence does not fit."""
    gpus = sorted({n.gpu for n in fit if n.gpu} or ({plan.gpu} if plan.gpu in plan.gpu_memory_gib else set()),
                  key=lambda g: plan.gpu_memory_gib[g])
    shown = None
    for gpu in gpus:
        est = estimate(gpu)
        shown = shown or est
        where = ", ".join(n.name for n in fit if n.gpu == gpu) or "plan.gpu"
        if est.hard_minimum is not None and est.hard_minimum > est.capacity:
            problems.append(f"{stage}: vLLM cannot start on {gpu} ({where}): weights, activations and one "
                            f"max_model_len sequence take {est.hard_minimum / GiB:.1f} GiB of {est.capacity / GiB:.1f}")
        elif not est.fits(plan.headroom):
            line = (f"{stage}: does not fit: {est.describe()}; wants <= "
                    f"{(1 - plan.headroom) * est.capacity / GiB:.1f} GiB ({plan.headroom:.0%} headroom) on {where}")
            if est.hard_minimum is None:
                problems.append(line)
            else:
                notes.append(line + ": vLLM runs fewer sequences at once (preempts) there")
    return shown


def _scale(plan: PlanConfig, shape: ModelShape | None) -> float:
    """Throughputs are for ``plan.reference_params``; a model of P parameters runs ~reference/P as fast."""
    return plan.reference_params / shape.params if shape else 1.0


def _api(stage: StagePlan, calls: float, tokens_in: float, tokens_out: float, plan: PlanConfig) -> StagePlan:
    stage.calls = calls
    stage.api_tokens = (calls * tokens_in, calls * tokens_out)
    stage.api_cost = (stage.api_tokens[0] * plan.teacher_usd_per_m_input
                      + stage.api_tokens[1] * plan.teacher_usd_per_m_output) / 1e6
    return stage


def plan_run(cfgs: Any, cluster: dict | None = None, plan: PlanConfig | None = None,
             run_dir: str | None = None) -> Plan:
    """The plan of the run ``cfgs`` describes, on ``cluster`` (None: one machine), under ``plan``'s assumptions."""
    from orca_math.run.recipe import planned_stages

    plan = plan or PlanConfig()
    problems: list[str] = []
    sizes = data_sizes(cfgs, plan)
    notes = list(sizes.notes)
    nodes = node_types(cluster, plan, notes) if cluster else []
    try:
        shape = student_shape(cfgs.run.student, cfgs.tiny_model)
    except PlanError as e:  # memory, hours and cost need the shape; the other checks do not
        notes.append(f"{e}; memory, hours and node cost are not estimated")
        shape = None
    stages: list[StagePlan] = []
    judge_calls = {"exact": 0.0, "llm": 1.0, "exact_then_llm": plan.judge_undecided_fraction}[cfgs.judge.method]

    for name in planned_stages(cfgs):
        if name in ("student", "seeds", "world") or name.startswith("prefs-"):
            continue  # CPU work of seconds to minutes on the head
        if name == "generate":
            g = cfgs.generate
            per_seed = ((1 if g.ask_me_anything.enabled else 0)
                        + (2 * g.suggester_editor.rounds if g.suggester_editor.enabled else 0)
                        + plan.problems_per_seed * (2 if g.solve.verify else 1))
            stages.append(_api(StagePlan(name, "teacher API", note=f"{per_seed:.1f} calls a seed"),
                               sizes.seeds * per_seed, plan.generate_input_tokens, plan.generate_output_tokens, plan))
        elif name == "solve":
            calls = sizes.problems * (2 if cfgs.solve.solve.verify else 1)
            stages.append(_api(StagePlan(name, "teacher API"), calls, plan.generate_input_tokens,
                               plan.generate_output_tokens, plan))
        elif name.startswith("judge-"):
            samples = sizes.practiced * cfgs.practice.decoding.n
            stages.append(_api(StagePlan(name, "head", note=f"{cfgs.judge.method}: {samples:,.0f} samples"),
                               samples * judge_calls, plan.judge_input_tokens, plan.judge_output_tokens, plan))
        elif name.startswith("eval-") or name.startswith("practice-"):
            stages.append(_sampling_stage(name, cfgs, sizes, shape, nodes, plan, problems, notes, judge_calls))
        else:
            stages.append(_training_stage(name, cfgs, sizes, shape, nodes, plan, problems, notes))

    problems += _teacher_problems(cfgs, nodes, plan)
    problems += _run_dir_problems(run_dir, cluster, plan)
    return Plan(stages, problems, notes, sizes, shape)


class InfeasibleRunError(ValueError):
    """The run, as configured, cannot go on this cluster (``infeasible`` says why)."""


def check_runnable(cfgs: Any, run_dir: str | Path, config: str | Path) -> None:
    """Raise :class:`InfeasibleRunError` with every reason ``infeasible`` finds, before anything is spent:
    against the head node's cluster file where `ray up` left one, else this machine."""
    problems = infeasible(cfgs, load_cluster(), str(run_dir))
    if problems:
        raise InfeasibleRunError("; ".join(problems) + f" (orca-math plan --config {config} shows the whole plan)")


def infeasible(cfgs: Any, cluster: dict | None = None, run_dir: str | None = None,
               plan: PlanConfig | None = None) -> list[str]:
    """Every reason the run ``cfgs`` cannot run on ``cluster`` into ``run_dir``, one line each; [] when it can.

    What ``orca-math run`` checks before its first stage: a stage that does not fit its GPU, resources
    no node type offers, a self-hosted teacher that can take a sampler's GPU, a relative or unshared
    run folder on a cluster. ``cluster`` is a parsed cluster file (:func:`load_cluster`)."""
    return plan_run(cfgs, cluster, plan, run_dir).problems


def _sampling_stage(name: str, cfgs: Any, sizes: Sizes, shape: ModelShape | None, nodes: list[NodeType],
                    plan: PlanConfig, problems: list[str], notes: list[str], judge_calls: float) -> StagePlan:
    section_name = "eval" if name.startswith("eval-") else "practice"
    section = getattr(cfgs, section_name)
    engine, decoding = section.engine, section.decoding
    on_gpu = _use_gpu(engine.use_gpu, nodes, plan)
    n_problems = sizes.eval_problems if name.startswith("eval-") else sizes.practiced
    samples = n_problems * decoding.n
    stage = StagePlan(name, "this machine", workers=engine.concurrency,
                      tokens=samples * min(plan.sample_tokens, decoding.max_tokens))
    request = engine.model_copy(update={"use_gpu": on_gpu}).bundle()
    fit = _placement(f"{name}: {engine.concurrency} vLLM engine(s)", request, engine.concurrency, nodes,
                     f"{section_name}.engine.concurrency, .tensor_parallel_size or .resources", problems)
    if on_gpu and shape is not None:
        node, stage.gpus, usd = _billed(fit, request, engine.concurrency)
        stage.where = node.name if node else "GPU"
        gpu = node.gpu if node else plan.gpu
        if gpu in plan.gpu_memory_gib:
            stage.memory = _check_memory(name, lambda g: engine_memory(
                engine, decoding, shape, g, plan.gpu_memory_gib[g], plan.prompt_tokens, plan.vllm_overhead_gib),
                fit, plan, problems, notes)
            rate = plan.sample_tokens_per_s.get(gpu)
            if rate:
                per_s = rate * _scale(plan, shape) * plan.sampler_efficiency * engine.concurrency
                stage.hours = (stage.tokens / per_s + plan.stage_startup_s) / 3600
            stage.gpu = gpu
            stage.gpu_hours = stage.hours * stage.gpus
            stage.cost = stage.hours * usd
    if name.startswith("eval-") and judge_calls:
        _api(stage, samples * judge_calls, plan.judge_input_tokens, plan.judge_output_tokens, plan)
    stage.note = f"{samples:,.0f} samples"
    return stage


def training_examples(name: str, cfgs: Any, sizes: Sizes, plan: PlanConfig) -> tuple[str, Any, float, float, float]:
    """(algorithm, trainer config, examples, tokens per example, compute factor) of a training stage."""
    algo = cfgs.run.preference_algo
    if name in ("sft", "sft-control"):
        cfg = cfgs.pref_train if (name == "sft-control" and algo == "rft") else cfgs.sft
        return "sft", cfg, sizes.problems, plan.prompt_tokens + plan.solution_tokens, 1.0
    per_problem = {"kto": plan.kto_examples_per_problem, "dpo": plan.dpo_pairs_per_problem,
                   "rft": plan.rft_examples_per_problem}[algo]
    factor = {"kto": plan.kto_compute_factor, "dpo": plan.dpo_compute_factor, "rft": 1.0}[algo]
    return algo, cfgs.pref_train, sizes.practiced * per_problem, plan.prompt_tokens + plan.sample_tokens, factor


def _training_stage(name: str, cfgs: Any, sizes: Sizes, shape: ModelShape | None, nodes: list[NodeType],
                    plan: PlanConfig, problems: list[str], notes: list[str]) -> StagePlan:
    algo, cfg, examples, per_example, factor = training_examples(name, cfgs, sizes, plan)
    if cfg.limit:
        examples = min(examples, cfg.limit)
    batch = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * cfg.scaling.num_workers
    steps = math.ceil(examples * cfg.epochs / batch)
    if cfg.max_steps > 0:
        steps = min(steps, cfg.max_steps)
    padding = plan.grouped_padding_factor if getattr(cfg, "group_by_length", False) else plan.padding_factor
    stage = StagePlan(name, "this machine", workers=cfg.scaling.num_workers,
                      tokens=steps * batch * per_example * padding * factor)
    on_gpu = _use_gpu(cfg.scaling.use_gpu, nodes, plan)
    request = _worker_request(cfg, on_gpu)
    fit = _placement(f"{name}: {cfg.scaling.num_workers} training worker(s)", request, cfg.scaling.num_workers,
                     nodes, f"{name}.scaling.num_workers or .resources_per_worker", problems)
    stage.note = f"{steps:,} steps of {batch}"
    if not (on_gpu and shape is not None):
        return stage
    est = training_memory(algo, cfg, shape, True, plan.framework_overhead_gib)
    stage.memory = _check_memory(name, lambda g: replace(est, capacity=plan.gpu_memory_gib[g] * GiB, gpu=g),
                                 fit, plan, problems, notes)
    node, stage.gpus, usd = _billed(fit, request, cfg.scaling.num_workers)
    stage.where = node.name if node else "GPU"
    gpu = node.gpu if node else plan.gpu
    rate = plan.train_tokens_per_s.get(gpu or "")
    if rate:
        train_s = stage.tokens / (rate * _scale(plan, shape) * cfg.scaling.num_workers)
        saves = steps // cfg.save_steps
        save_s = plan.checkpoint_bytes_per_param * shape.params / (plan.checkpoint_gb_per_s * 1e9)
        stage.hours = (train_s + saves * save_s + plan.stage_startup_s) / 3600
        share = saves * save_s / train_s if train_s else 0.0
        stage.note += f", {saves} save(s) x {save_s:.0f} s = {share:.1%} of training"
    stage.gpu = gpu
    stage.gpu_hours = stage.hours * stage.gpus
    stage.cost = stage.hours * usd
    return stage


def checkpoint_share(name: str, cfgs: Any, plan: PlanConfig | None = None) -> float:
    """Checkpoint time / training time of a stage at a save every ``save_steps``, whatever the data size."""
    plan = plan or PlanConfig()
    shape = student_shape(cfgs.run.student, cfgs.tiny_model)
    algo, cfg, _, per_example, factor = training_examples(name, cfgs, Sizes(1, 1, 1, 1), plan)
    padding = plan.grouped_padding_factor if getattr(cfg, "group_by_length", False) else plan.padding_factor
    batch = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * cfg.scaling.num_workers
    step_s = batch * per_example * padding * factor / (plan.train_tokens_per_s["A100-40GB"] * _scale(plan, shape)
                                                        * cfg.scaling.num_workers)
    save_s = plan.checkpoint_bytes_per_param * shape.params / (plan.checkpoint_gb_per_s * 1e9)
    return save_s / (cfg.save_steps * step_s)


def _teacher_problems(cfgs: Any, nodes: list[NodeType], plan: PlanConfig) -> list[str]:
    """A self-hosted teacher on GPUs that can land where practice's engines need every GPU."""
    from orca_math.teacher.config import TeacherConfig

    serve = cfgs.serve.teacher
    self_hosted = isinstance(cfgs.teacher, TeacherConfig) and (
        serve.model_id is not None or not cfgs.teacher.base_url.startswith("https://"))
    uses_teacher = cfgs.run.generate or cfgs.run.solve or cfgs.judge.method != "exact"
    if not (nodes and self_hosted and uses_teacher):
        return []
    on_gpu = serve.accelerator == "gpu" or (serve.accelerator == "auto" and any(n.resources.get("GPU") for n in nodes))
    if not on_gpu:
        return []
    teacher = {"GPU": float(serve.tensor_parallel_size), **(getattr(serve, "resources", None) or {})}
    problems: list[str] = []
    _placement("the self-hosted teacher's replicas", teacher, serve.max_replicas, nodes,
               "serve.teacher.resources, .tensor_parallel_size or .max_replicas", problems)
    engine = cfgs.practice.engine
    engines = engine.model_copy(update={"use_gpu": True}).bundle()
    shared = [n for n in nodes if n.holds(teacher) and n.holds(engines)]
    room = sum(n.holds(engines) * n.max_workers for n in shared)
    taken = serve.max_replicas * math.ceil(serve.tensor_parallel_size / max(engine.tensor_parallel_size, 1))
    if shared and room < engine.concurrency + taken:
        problems.append(
            f"the self-hosted teacher ({teacher}) can take a GPU on {', '.join(n.name for n in shared)}, whose "
            f"{room} engine slots practice's {engine.concurrency} engines need: give serve.teacher.resources a "
            "custom resource only another node type advertises")
    return problems


def _run_dir_problems(run_dir: str | None, cluster: dict | None, plan: PlanConfig) -> list[str]:
    """On a cluster the run folder must be absolute and on storage every node sees."""
    if run_dir is None or not cluster:
        return []
    if str(run_dir).startswith(("s3://", "gs://", "abfs://")):
        return [f"run folder {run_dir}: the stages read and write local paths; use a shared file system path"]
    path = PurePosixPath(str(run_dir))
    if not path.is_absolute():
        return [f"run folder {run_dir} is relative: under `ray job submit` it lands in the job's working-dir copy "
                "on the head node (node-local, a new copy each submit); give an absolute path on shared storage"]
    problems = []
    roots = shared_roots(cluster, plan)
    if not any(path == PurePosixPath(r) or PurePosixPath(r) in path.parents for r in roots):
        problems.append(f"run folder {run_dir} is not under a path the cluster shares ({roots or 'none found'}): "
                        "every node reads and writes it; use one, or --set plan.shared_paths=[PATH]")
    for command in cluster_placeholders(cluster):
        problems.append(f"the cluster file's setup still holds a placeholder (CHANGE-ME), so its shared "
                        f"file system is not mounted: {command.strip()[:120]}")
    return problems
