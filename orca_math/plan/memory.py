"""GPU memory per worker of a training stage and per vLLM engine, by arithmetic over the configs.

Pure functions, no torch: `orca-math plan` runs on a laptop. Every term is named so a reader can
hold it against its source:

- **Model states** (weights, gradients, Adam). Without DeepSpeed: weights and gradients in the
  loaded dtype plus AdamW's two moments in the same dtype (torch keeps state like the parameter),
  and DDP's gradient buckets (a second copy of the gradients) with more than one worker. That is
  16 bytes/parameter for fp32 weights under bf16 autocast, the figure accelerate's
  ``estimate_training_usage(.., "float32")`` gives too. Under DeepSpeed the state is DeepSpeed's own
  estimators', not a rewrite of the ZeRO paper's 16 bytes/parameter:
  ``estimate_zero3_model_states_mem_needs`` (deepspeed 0.19.8, ``deepspeed/runtime/zero/stage3.py``):
  ``4 x largest_layer + 18 x P / N`` (``4 x largest_layer + 2 x P / N`` with the optimizer offloaded,
  ``4 x largest_layer`` with parameters offloaded too), and ``estimate_zero2_model_states_mem_needs``
  (``deepspeed/runtime/zero/stage_1_and_2.py``): ``2 P + 18 P / N`` (16-bit weights whole; 16-bit
  and fp32 gradients, fp32 master weights and Adam sharded; ``2 P`` offloaded). The 18 is the ZeRO
  paper's 16 bytes/parameter plus DeepSpeed's fp32 gradient partition. Stage 1 keeps the 16-bit
  gradients whole too (``4 P + 16 P / N``). FSDP's full_shard is counted as ``16 P / N`` (fp32 shards of weights,
  gradients, Adam), shard_grad_op as ``4 P + 12 P / N``.
- **The reference model** (DPO, KTO without ``precompute_ref_log_probs``): TRL loads it from the same
  path; under ZeRO-3 ``prepare_deepspeed`` shards it (``2 P / N`` in bf16), otherwise it is a whole
  copy in the loaded dtype.
- **Gathered parameters** under ZeRO-3/FSDP: the decoder block being computed and the one prefetched.
- **Activations** at the configured per-device batch and ``max_length`` (every row padded to it: the
  worst batch). Per token and decoder block a Llama/Mistral block keeps ``6 h + 2 kv + 4 i`` values
  for backward (the two norms' inputs and outputs, q, k, v, the attention output; the MLP's gate, its
  activation, up and their product); sdpa attention (transformers' default on GPUs) keeps no
  ``s x s`` scores, eager attention does. With gradient checkpointing each block keeps only its
  input (``h``) and one block is recomputed at a time, plus a backward working set of ``2 i``.
  DPO runs chosen and rejected together: twice the sequences.
- **The LM head**: TRL 1.16 computes log-probabilities in tiles of 4,096 tokens
  (``trl/kernels/chunked_logprob.py`` ``TOKEN_CHUNK_SIZE``) for SFT (``fused_lm_head``), DPO and KTO,
  so full logits exist only for SFT with ``fused_lm_head: false``.
- **Framework overhead**: the CUDA context, NCCL buffers and the allocator's fragmentation, one stated
  constant per GPU (``plan.framework_overhead_gib``).

A vLLM engine holds its weights (split by tensor parallelism), an activation peak for one
scheduler step of ``max_num_batched_tokens``, CUDA graphs and context (``plan.vllm_overhead_gib``),
and a KV cache of ``2 x layers x kv_heads x head_dim x dtype`` bytes per token; vLLM lets itself use
``gpu_memory_utilization`` of the GPU and must hold one ``max_model_len`` sequence to start. The
estimate counts the KV cache for ``max_num_seqs`` sequences of prompt + ``max_tokens``: a full batch
that never preempts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GiB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# TRL 1.16's fused LM head projects this many tokens at a time (trl/kernels/chunked_logprob.py).
LM_HEAD_TILE_TOKENS = 4096


class PlanError(ValueError):
    """The plan cannot be made: an unknown model, a GPU type without a memory figure, a bad cluster file."""


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on in a Llama/Mistral-style decoder (config.json's fields)."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = False
    head_dim: int | None = None
    qkv_bias: bool = False
    max_positions: int = 4096  # config.json's max_position_embeddings: vLLM's max_model_len when none is set

    @property
    def dim_per_head(self) -> int:
        """The attention head width."""
        return self.head_dim or self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        """Width of the k (or v) projection: fewer heads than q under grouped-query attention."""
        return self.kv_heads * self.dim_per_head

    @property
    def block_params(self) -> int:
        """Parameters of one decoder block: attention, MLP, two norms."""
        q_o = 2 * self.hidden * self.heads * self.dim_per_head
        kv = 2 * self.hidden * self.kv_dim
        bias = (self.heads * self.dim_per_head + 2 * self.kv_dim) if self.qkv_bias else 0
        return q_o + kv + bias + 3 * self.hidden * self.intermediate + 2 * self.hidden

    @property
    def params(self) -> int:
        """All parameters: embeddings, blocks, final norm, LM head (unless tied)."""
        embed = self.vocab * self.hidden
        return embed * (1 if self.tied else 2) + self.layers * self.block_params + self.hidden

    @property
    def largest_layer(self) -> int:
        """Parameters of the largest single module (DeepSpeed's ``largest_layer_params``)."""
        return max(self.vocab * self.hidden, self.hidden * self.intermediate,
                   self.hidden * self.heads * self.dim_per_head)

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """KV cache bytes one token takes in every layer (k and v)."""
        return 2 * self.layers * self.kv_dim * dtype_bytes


# config.json shapes of the students `plan` knows without a download. Parameter counts are checked
# against transformers' own models built on the meta device (tests/test_plan.py).
KNOWN_MODELS: dict[str, ModelShape] = {
    "mistralai/Mistral-7B-v0.1": ModelShape(4096, 32, 14336, 32, 8, 32000, max_positions=32768),
    "mistralai/Mistral-7B-Instruct-v0.1": ModelShape(4096, 32, 14336, 32, 8, 32000, max_positions=32768),
    "mistralai/Mistral-7B-Instruct-v0.2": ModelShape(4096, 32, 14336, 32, 8, 32000, max_positions=32768),
    "meta-llama/Llama-2-7b-hf": ModelShape(4096, 32, 11008, 32, 32, 32000, max_positions=4096),
    "meta-llama/Meta-Llama-3-8B": ModelShape(4096, 32, 14336, 32, 8, 128256, max_positions=8192),
    "meta-llama/Llama-3.1-8B": ModelShape(4096, 32, 14336, 32, 8, 128256, max_positions=131072),
    "Qwen/Qwen2.5-7B": ModelShape(3584, 28, 18944, 28, 4, 152064, qkv_bias=True, max_positions=131072),
    "Qwen/Qwen2.5-Math-7B": ModelShape(3584, 28, 18944, 28, 4, 152064, qkv_bias=True, max_positions=4096),
}


def shape_from_config_json(path: str | Path) -> ModelShape:
    """A model folder's (or config.json's) shape; errors name the file and the missing field."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PlanError(f"{file}: cannot read the model's config.json: {e}") from e
    cfg = cfg.get("text_config", cfg)
    try:
        return ModelShape(
            hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"], intermediate=cfg["intermediate_size"],
            heads=cfg["num_attention_heads"], kv_heads=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
            vocab=cfg["vocab_size"], tied=bool(cfg.get("tie_word_embeddings", False)), head_dim=cfg.get("head_dim"),
            qkv_bias=bool(cfg.get("attention_bias", False) or cfg.get("model_type") == "qwen2"),
            max_positions=int(cfg.get("max_position_embeddings") or 4096),
        )
    except KeyError as e:
        raise PlanError(f"{file}: no {e.args[0]!r}: plan reads Llama/Mistral-style decoder configs") from e


def student_shape(student: str, tiny: Any = None) -> ModelShape:
    """The shape of ``student``: ``tiny`` (from the tiny_model section), a local folder, or a known HF id."""
    if student == "tiny":
        t = tiny
        return ModelShape(t.hidden_size, t.num_layers, t.intermediate_size, t.num_heads, t.num_heads, t.vocab_size,
                          max_positions=t.max_position_embeddings)
    if Path(student).exists():
        return shape_from_config_json(student)
    if student in KNOWN_MODELS:
        return KNOWN_MODELS[student]
    raise PlanError(f"run.student {student!r}: plan works offline and does not know this model; give a local "
                    f"folder with its config.json, or one of {sorted(KNOWN_MODELS)}")


@dataclass
class MemoryEstimate:
    """Bytes per GPU (or per process on CPU), term by term, held against a capacity."""

    what: str
    parts: dict[str, float] = field(default_factory=dict)
    capacity: float | None = None   # bytes the worker may use (vLLM: gpu_memory_utilization x the GPU)
    gpu: str | None = None
    hard_minimum: float | None = None  # below this it cannot start at all (vLLM: one max_model_len sequence)

    @property
    def total(self) -> float:
        """The estimate: the sum of the terms."""
        return sum(self.parts.values())

    def headroom(self) -> float | None:
        """Share of the capacity left over; negative when the estimate does not fit."""
        return None if not self.capacity else 1 - self.total / self.capacity

    def fits(self, headroom: float = 0.0) -> bool:
        """Whether the estimate fits with at least ``headroom`` of the capacity to spare."""
        return self.capacity is None or self.total <= (1 - headroom) * self.capacity

    def describe(self) -> str:
        """One line: the estimate, the capacity, the terms in GiB."""
        terms = ", ".join(f"{k} {v / GiB:.1f}" for k, v in self.parts.items() if v >= 0.05 * GiB)
        cap = f" of {self.capacity / GiB:.1f} GiB on {self.gpu}" if self.capacity else ""
        return f"{self.what}: {self.total / GiB:.1f} GiB{cap} ({terms})"


def zero_stage(cfg: Any) -> tuple[int, bool, bool]:
    """(ZeRO stage, optimizer offloaded, parameters offloaded) of a trainer config; FSDP maps onto
    stages (full_shard 3, shard_grad_op 2); neither is stage 0 (plain DDP)."""
    ds = cfg.deepspeed
    if isinstance(ds, str):
        ds = json.loads(Path(ds).read_text(encoding="utf-8"))
    if ds:
        zero = ds.get("zero_optimization") or {}
        offload = lambda key: (zero.get(key) or {}).get("device", "none") not in ("none", None)  # noqa: E731
        return int(zero.get("stage", 0)), offload("offload_optimizer"), offload("offload_param")
    fsdp = set((cfg.fsdp or "").split())
    if fsdp & {"full_shard", "hybrid_shard"}:
        return 3, "offload" in fsdp, "offload" in fsdp
    if fsdp & {"shard_grad_op", "hybrid_shard_zero2"}:
        return 2, "offload" in fsdp, False
    return 0, False, False


def training_memory(algo: str, cfg: Any, shape: ModelShape, on_gpu: bool, overhead_gib: float) -> MemoryEstimate:
    """Peak bytes per training worker of ``algo`` (sft, rft, dpo, kto) under trainer config ``cfg``."""
    p, n = shape.params, cfg.scaling.num_workers
    stage, offload_opt, offload_params = zero_stage(cfg)
    sharded = cfg.deepspeed is not None or bool(cfg.fsdp)
    mixed = cfg.bf16 is True or cfg.fp16 is True or ((cfg.bf16 == "auto" or cfg.fp16 == "auto") and on_gpu)
    w = DTYPE_BYTES.get(cfg.model_dtype, 2)  # auto loads the checkpoint's dtype: 16-bit for the known models
    parts: dict[str, float] = {}

    if cfg.deepspeed is not None:
        if stage == 3:
            per_param = 0 if offload_params else (2 if offload_opt else 18)
            parts["model states (ZeRO-3)"] = 4 * shape.largest_layer + per_param * p / n
        elif stage == 2:
            parts["model states (ZeRO-2)"] = 2 * p if offload_opt else 2 * p + 18 * p / n
        elif stage == 1:  # 16-bit gradients whole, fp32 gradients, master weights and Adam sharded
            parts["model states (ZeRO-1)"] = 4 * p + 16 * p / n
        else:
            parts["model states (ZeRO-0)"] = 2 * p + 18 * p
    elif stage == 3:
        parts["model states (FSDP full_shard)"] = 16 * p / n
    elif stage == 2:
        parts["model states (FSDP shard_grad_op)"] = 4 * p + 12 * p / n
    else:
        parts["weights"] = w * p
        parts["gradients"] = w * p
        parts["Adam moments"] = 2 * w * p
        if n > 1:
            parts["DDP gradient buckets"] = w * p

    if algo in ("dpo", "kto") and not getattr(cfg, "precompute_ref_log_probs", False):
        parts["reference model"] = 2 * p / n if (cfg.deepspeed is not None and stage == 3) else w * p
    if stage == 3:
        parts["gathered blocks (ZeRO-3)"] = 2 * shape.block_params * 2

    # Activations are 16-bit when the weights are (DeepSpeed casts them under bf16); under autocast
    # over fp32 weights the residual stream and norms stay fp32, so count 4 bytes there.
    act = 2 if ((sharded and mixed) or w == 2) else 4
    seqs = cfg.per_device_batch_size * (2 if algo == "dpo" else 1)
    tokens = seqs * cfg.max_length
    h, i = shape.hidden, shape.intermediate
    per_block = 6 * h + 2 * shape.kv_dim + 4 * i
    attention = 0.0
    if (cfg.attn_implementation or ("eager" if (mixed and not on_gpu) else "sdpa")) == "eager":
        # eager attention keeps its s x s probabilities (softmax in fp32, cast back) per head
        attention = seqs * shape.heads * cfg.max_length ** 2 * (act + 4)
    backward = tokens * 2 * i * act
    if cfg.gradient_checkpointing:
        parts["checkpointed block inputs"] = shape.layers * tokens * h * act
        parts["one block recomputed"] = tokens * per_block * act + attention + backward
    else:
        parts["activations"] = shape.layers * (tokens * per_block * act + attention) + backward
    if algo in ("dpo", "kto") or getattr(cfg, "fused_lm_head", True):
        parts["LM head tiles"] = 2 * min(tokens, LM_HEAD_TILE_TOKENS) * shape.vocab * 4
    else:  # logits in the compute dtype, their fp32 upcast for the loss, and its gradient
        parts["logits"] = tokens * shape.vocab * (act + 4 + 4)
    if on_gpu:
        parts["framework overhead"] = overhead_gib * GiB
    return MemoryEstimate(f"{algo} worker", parts)


def vllm_defaults(gpu_memory_gib: float, gpu_name: str) -> tuple[int, int]:
    """vLLM 0.32's ``LLM`` defaults (max_num_seqs, max_num_batched_tokens) for a GPU
    (``vllm/engine/arg_utils.py`` ``_get_default_max_num_seqs_and_batched_tokens``)."""
    if gpu_memory_gib >= 160:
        return 1024, 16384
    if gpu_memory_gib >= 70 and "a100" not in gpu_name.lower():
        return 1024, 16384
    return 256, 8192


def engine_memory(engine: Any, decoding: Any, shape: ModelShape, gpu_name: str, gpu_memory_gib: float,
                  prompt_tokens: int, overhead_gib: float) -> MemoryEstimate:
    """Bytes one GPU of a vLLM engine holds, against ``gpu_memory_utilization`` of ``gpu_memory_gib``."""
    tp = engine.tensor_parallel_size
    dtype = DTYPE_BYTES.get(engine.dtype, 2)  # auto: bf16 on GPUs
    default_seqs, batched = vllm_defaults(gpu_memory_gib, gpu_name)
    max_seqs = getattr(engine, "max_num_seqs", None) or default_seqs
    batched = getattr(engine, "max_num_batched_tokens", None) or batched
    max_model_len = engine.max_model_len or shape.max_positions
    seq_len = min(max_model_len, prompt_tokens + decoding.max_tokens)
    kv_token = shape.kv_bytes_per_token(dtype) / tp
    parts = {
        "weights": shape.params * dtype / tp,
        "activation peak": batched * (2 * shape.intermediate + 4 * shape.hidden) * dtype / tp,
        "CUDA graphs and context": overhead_gib * GiB,
        f"KV cache ({max_seqs} x {seq_len} tokens)": max_seqs * seq_len * kv_token,
    }
    est = MemoryEstimate(f"vLLM engine (tp {tp})", parts, capacity=engine.gpu_memory_utilization * gpu_memory_gib * GiB,
                         gpu=gpu_name)
    est.hard_minimum = est.total - parts[f"KV cache ({max_seqs} x {seq_len} tokens)"] + max_model_len * kv_token
    return est
