"""Training configs: one pydantic model per algorithm (SFT, DPO, KTO) plus where training runs.

Defaults reproduce the Orca-Math recipe on a GPU cluster: SFT for 1 epoch at a constant learning
rate of 1e-6 without packing, bf16 with gradient checkpointing. The paper does not report its
DPO/KTO hyperparameters, so these are our choices (documented on the fields): beta 0.1 (the DPO
and KTO papers' default, also TRL's) and the same constant 1e-6 learning rate as SFT (TRL's
default for both, and a safe rate for full fine-tuning of a 7B model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from orca_math.common.config import StageConfig
from orca_math.common.hardware import Auto
from orca_math.common.prompts import DEFAULT_PROMPT_TEMPLATE

DPOLoss = Literal["sigmoid", "hinge", "ipo", "robust", "sft"]

# transformers' FSDPOption values (listed here so validating a config needs no torch import).
FSDP_OPTIONS = {"full_shard", "shard_grad_op", "no_shard", "hybrid_shard", "hybrid_shard_zero2", "offload", "auto_wrap"}


class TrainScalingConfig(StageConfig):
    """Where training runs: Ray Train workers (one per GPU on a cluster) and their resources."""

    # num_workers is not here: it multiplies the batch, so it changes what is trained.
    execution_fields = frozenset({"use_gpu", "resources_per_worker", "placement_strategy", "max_failures",
                                  "local_mode", "start_timeout_s"})

    num_workers: int = Field(1, ge=1, description="Data-parallel training workers (Ray Train actors).")
    local_mode: bool = Field(
        False,
        description="Train in this process with Ray Train's local mode (ScalingConfig(num_workers=0)) instead of "
        "in a worker actor: no controller, worker group or helper actors to start, which on a 2-core CPU is "
        "30-35 s of every training stage (measured). The trainer's own checkpoints (save_steps, "
        "checkpoints_to_keep) are kept in the stage folder and a rerun resumes from them; max_failures, "
        "resources_per_worker and placement_strategy do not apply. Applies to one worker only: with num_workers "
        "above 1 the workers are Ray Train actors as without it.",
    )
    use_gpu: bool | Auto = Field(
        "auto", description="One GPU per worker (NCCL); False trains on CPU (gloo). auto: GPUs where the Ray "
        "cluster has them or its autoscaler can add them, else CPU.",
    )
    resources_per_worker: dict[str, float] | None = Field(
        None,
        description="Ray resources each worker reserves, e.g. {CPU: 8, GPU: 1} or a custom resource that "
        "pins training to a node type. None: Ray's default (1 CPU, plus 1 GPU with use_gpu).",
    )
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="How workers are placed on nodes (Ray placement group strategy)."
    )
    max_failures: int = Field(
        1, ge=-1,
        description="Worker-group failures Ray Train retries, each time from the last checkpoint (-1: forever).",
    )
    start_timeout_s: float | None = Field(
        None, gt=0,
        description="Longest wait for the workers' resources (Ray Train's placement group) when the workers start "
        "or restart; then the stage fails in one line naming them. A request no live node and no autoscaler "
        "node type could ever meet fails at once instead. None: 1200 s where an autoscaler can add nodes (a cold "
        "GPU node: boot, image pull, setup, `ray start`), 120 s on a fixed cluster (orca_math/common/capacity.py).",
    )

    @model_validator(mode="after")
    def _resources_match_device(self) -> "TrainScalingConfig":
        res = self.resources_per_worker or {}
        for key, value in res.items():
            if value < 0:
                raise ValueError(f"resources_per_worker.{key} must be >= 0, got {value}")
        if res.get("GPU", 0) > 0 and self.use_gpu is False:
            raise ValueError("resources_per_worker asks for GPUs but use_gpu is false")
        return self

    @property
    def in_process(self) -> bool:
        """Ray Train's local mode: the one worker is the calling process."""
        return self.local_mode and self.num_workers == 1

    def ray_scaling_config(self):
        """This placement as a ``ray.train.ScalingConfig`` (what ``fit_on_ray`` hands Ray Train)."""
        from ray.train import ScalingConfig

        if self.in_process:
            return ScalingConfig(num_workers=0)  # Ray Train's local mode: the loop runs in the caller
        if self.use_gpu == "auto":
            raise ValueError("scaling.use_gpu is still auto: resolve it against the cluster first (fit_on_ray does)")
        return ScalingConfig(
            num_workers=self.num_workers,
            use_gpu=self.use_gpu,
            resources_per_worker=dict(self.resources_per_worker) if self.resources_per_worker else None,
            placement_strategy=self.placement_strategy,
        )


class TrainConfigBase(StageConfig):
    """Knobs shared by SFT, DPO and KTO: optimization, lengths, precision, checkpoints, scaling."""

    execution_fields = frozenset({"gradient_checkpointing", "logging_steps", "save_steps", "checkpoints_to_keep",
                                  "keep_checkpoints", "scratch_dir", "report_to"})
    # A larger budget continues from the stage's last checkpoint (kept with keep_checkpoints) rather
    # than training again from step 0.
    resumable_fields = frozenset({"max_steps", "max_time_s", "max_tokens"})

    limit: int | None = Field(None, ge=1, description="Train on only the first N input rows (smoke tests).")
    epochs: float = Field(1.0, gt=0, description="Passes over the data (paper: 1).")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: run all epochs).")
    max_time_s: float | None = Field(
        None, gt=0,
        description="Also stop once the training loop has run this long, whichever comes first: a cap that keeps "
        "a run inside its time budget on a slower machine (e.g. a CPU without native bf16) at the price of fewer "
        "steps. The learning-rate schedule is fitted to it (its position is the further of steps/max_steps and "
        "elapsed/max_time_s, the clock counting once a tenth of the cap has passed and the pace so far would "
        "overrun it), so a run the clock stops still ends annealed. Where max_steps finish first the schedule is "
        "the plain one and runs reproduce. None: no cap.",
    )
    max_tokens: int | None = Field(
        None, ge=1,
        description="Also stop once training has seen this many input tokens (not padding), whichever comes "
        "first; the schedule is fitted to it as to max_time_s. A compute budget that does not depend on how long "
        "the sequences are (the demo's SFT control gets the practice rounds' tokens). None: no budget.",
    )
    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate (paper: 1e-6 for SFT).")
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        "constant", description="Learning-rate schedule (paper: constant)."
    )
    warmup_steps: float = Field(0, ge=0, description="Warmup steps; a value below 1 is a fraction of all steps.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    per_device_batch_size: int = Field(
        4, ge=1, description="Sequences per worker per forward pass (our choice; the paper does not say)."
    )
    gradient_accumulation_steps: int = Field(
        4, ge=1, description="Forward passes per optimizer step; global batch = workers x this x per_device_batch_size."
    )
    max_length: int = Field(
        1024, ge=8,
        description="Longest prompt + completion in tokens. Longer rows are quarantined, not silently truncated "
        "(a cut solution loses its final answer).",
    )
    max_prompt_length: int = Field(512, ge=1, description="Longest prompt in tokens; longer rows are quarantined.")
    seed: int = Field(42, description="Seed for weights init of new heads, data order and dropout.")

    model_dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="dtype the weights are loaded in; mixed precision (bf16) keeps fp32 master weights."
    )
    bf16: bool | Auto = Field(
        "auto", description="bf16 mixed precision. auto: on GPUs that support it, and on CPUs with native bf16 "
        "(AVX512_BF16, AMX); fp32 on other CPUs, where emulated bf16 is ~20x slower (orca_math/common/hardware.py).",
    )
    fp16: bool | Auto = Field("auto", description="fp16 mixed precision. auto: on GPUs without bf16 only.")
    gradient_checkpointing: bool = Field(True, description="Recompute activations in backward to save memory.")
    attn_implementation: str | None = Field(
        None,
        description="transformers attention kernel for training (eager, sdpa, flash_attention_2, ...). None "
        "follows the precision: eager under bf16 autocast on CPU (1.16x faster there), else transformers' "
        "default, sdpa (faster in fp32 and on GPUs; docs/demo-results.md).",
    )
    deepspeed: dict[str, Any] | str | None = Field(
        None, description="DeepSpeed config (ZeRO stage etc.) as a mapping or a JSON file path, passed to transformers."
    )
    fsdp: str | None = Field(
        None, description="FSDP mode passed to transformers, e.g. 'full_shard auto_wrap'. Exclusive with deepspeed."
    )
    fsdp_config: dict[str, Any] | None = Field(None, description="FSDP options passed to transformers.")
    optim: str = Field("adamw_torch", description="transformers optimizer name.")

    logging_steps: int = Field(10, ge=1, description="Optimizer steps between logged losses (the loss curve).")
    save_steps: int = Field(
        200, ge=1, description="Optimizer steps between checkpoints (what a rerun of an interrupted stage resumes from)."
    )
    checkpoints_to_keep: int = Field(
        1, ge=1, description="Checkpoints kept in storage (Ray Train's; the trainer's own in local_mode)."
    )
    keep_checkpoints: bool = Field(False, description="Keep checkpoints after a successful run (else deleted).")
    scratch_dir: str | None = Field(
        None,
        description="Node-local folder where each Ray Train worker writes its part of a checkpoint before Ray Train "
        "stores it in the run folder, e.g. a local NVMe disk on GPU nodes. One fixed subfolder per stage, wiped "
        "when the stage starts; each checkpoint is deleted there once stored, so it holds at most one per worker. "
        "An absolute path (~ and $VARS expand on the worker). None: each node's ORCA_MATH_SCRATCH (cluster.yaml "
        "sets it to the NVMe instance store), else its temp folder. "
        "Unused in local_mode, where the trainer writes into the run folder.",
    )
    report_to: list[str] = Field(default_factory=list, description="transformers loggers, e.g. [wandb, tensorboard].")

    scaling: TrainScalingConfig = Field(default_factory=TrainScalingConfig)

    @field_validator("scratch_dir")
    @classmethod
    def _scratch_dir_is_absolute(cls, value: str | None) -> str | None:
        # A relative path would land in each Ray worker's own working folder.
        if value is not None and not value.startswith(("~", "$")) and not Path(value).is_absolute():
            raise ValueError(f"scratch_dir must be an absolute path (a node-local disk), got {value!r}")
        return value

    @field_validator("deepspeed")
    @classmethod
    def _deepspeed_is_json(cls, value: dict[str, Any] | str | None) -> dict[str, Any] | str | None:
        if isinstance(value, str):
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"DeepSpeed config file {value} does not exist")
            try:
                parsed = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"DeepSpeed config file {value} is not valid JSON: {e}") from e
            if not isinstance(parsed, dict):
                raise ValueError(f"DeepSpeed config file {value} must hold a JSON object")
        return value

    @model_validator(mode="after")
    def _gpu_settings_are_consistent(self) -> "TrainConfigBase":
        if self.bf16 is True and self.fp16 is True:
            raise ValueError("bf16 and fp16 are exclusive")
        if self.deepspeed is not None and self.fsdp:
            raise ValueError("deepspeed and fsdp are exclusive")
        unknown_fsdp = set((self.fsdp or "").split()) - FSDP_OPTIONS
        if unknown_fsdp:
            raise ValueError(f"unknown fsdp option(s) {sorted(unknown_fsdp)}; use {sorted(FSDP_OPTIONS)}")
        if self.fsdp_config is not None and not self.fsdp:
            raise ValueError("fsdp_config needs fsdp (e.g. 'full_shard auto_wrap')")
        if self.scaling.use_gpu is False:
            needs_gpu = [name for name, on in (("fp16", self.fp16 is True),
                                               ("deepspeed", self.deepspeed is not None), ("fsdp", bool(self.fsdp)))
                         if on]
            if needs_gpu:
                raise ValueError(f"{', '.join(needs_gpu)} need scaling.use_gpu: true (set them false/null on CPU)")
            if self.model_dtype in ("bfloat16", "float16"):
                raise ValueError(f"model_dtype {self.model_dtype} needs a GPU; use float32 on CPU")
        if self.max_prompt_length >= self.max_length:
            raise ValueError(f"max_prompt_length ({self.max_prompt_length}) must be < max_length ({self.max_length})")
        if self.deepspeed is not None:
            ds = self.deepspeed if isinstance(self.deepspeed, dict) else json.loads(Path(self.deepspeed).read_text())
            zero = ds.get("zero_optimization", {})
            if not isinstance(zero, dict) or zero.get("stage", 0) not in (0, 1, 2, 3):
                raise ValueError("deepspeed.zero_optimization.stage must be 0, 1, 2 or 3")
            # The output must be one loadable HF folder, not per-rank ZeRO shards.
            if zero.get("stage") == 3 and not zero.get("stage3_gather_16bit_weights_on_model_save"):
                raise ValueError("ZeRO-3 needs zero_optimization.stage3_gather_16bit_weights_on_model_save: true "
                                 "so the output folder holds whole weights")
        state_dict_type = (self.fsdp_config or {}).get("state_dict_type", "FULL_STATE_DICT")
        if self.fsdp and state_dict_type != "FULL_STATE_DICT":
            raise ValueError("fsdp_config.state_dict_type must be FULL_STATE_DICT so the output folder holds whole weights")
        return self


class SFTTrainConfig(TrainConfigBase):
    """Supervised fine-tuning on (question, teacher solution) with loss on the solution tokens only."""

    prompt_template: str = Field(DEFAULT_PROMPT_TEMPLATE, description="Student prompt format; must contain {question}.")
    packing: bool = Field(False, description="Pack several examples per sequence (paper: no packing).")
    group_by_length: bool = Field(
        False, description="Batch examples of similar length (still in random megabatches): far less padding "
        "when lengths vary, e.g. 1.8x fewer tokens on the demo's problems.",
    )
    fused_lm_head: bool = Field(
        True, description="TRL's chunked LM head: log-probs of the solution tokens only, in tiles, with entropy "
        "and token-accuracy metrics (less memory for large vocabularies). false: the model's own loss over "
        "the full logits, no extra metrics: 1.4x faster for the tiny demo student under CPU bf16 autocast, the same speed in fp32 (measured).",
    )

    @field_validator("prompt_template")
    @classmethod
    def _template_has_question(cls, value: str) -> str:
        if "{question}" not in value:
            raise ValueError("prompt_template must contain {question}")
        return value


class DPOTrainConfig(TrainConfigBase):
    """DPO on (prompt, chosen, rejected) pairs; the reference model is the round's starting model."""

    beta: float = Field(0.1, gt=0, description="Strength of the KL pull to the reference (our choice: 0.1).")
    loss_type: DPOLoss | list[DPOLoss] = Field(
        "sigmoid", description="DPO loss variant, or a list summed with loss_weights: [sigmoid, sft] is RPO "
        "(DPO plus the NLL of the chosen solution, which keeps chosen likelihood from falling).",
    )
    loss_weights: list[float] | None = Field(
        None, description="Weight of each loss_type entry (None: 1.0 each), e.g. [1.0, 0.5]."
    )
    precompute_ref_log_probs: bool = Field(
        False, description="Score the data with the reference model once up front, so it needn't stay in memory."
    )

    @model_validator(mode="after")
    def _weights_match_losses(self) -> "DPOTrainConfig":
        losses = self.loss_type if isinstance(self.loss_type, list) else [self.loss_type]
        if not losses:
            raise ValueError("loss_type must name at least one loss")
        if self.loss_weights is not None and len(self.loss_weights) != len(losses):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} entries for {len(losses)} loss_type(s)")
        return self


class KTOTrainConfig(TrainConfigBase):
    """KTO on unpaired (prompt, completion, label) examples; reference = the round's starting model."""

    beta: float = Field(0.1, gt=0, description="Strength of the KL pull to the reference (our choice: 0.1).")
    desirable_weight: float = Field(1.0, gt=0, description="Loss weight of label=True examples.")
    undesirable_weight: float = Field(
        1.0, gt=0,
        description="Loss weight of label=False examples; the KTO paper suggests weights making "
        "desirable_weight*n_true / (undesirable_weight*n_false) fall in [1, 4/3].",
    )
    loss_type: Literal["kto", "apo_zero_unpaired"] = Field("kto", description="KTO loss variant.")
    precompute_ref_log_probs: bool = Field(
        False, description="Score the data with the reference model once up front, so it needn't stay in memory."
    )

    @model_validator(mode="after")
    def _kl_needs_a_batch(self) -> "KTOTrainConfig":
        # KTO estimates its KL term from mismatched (prompt, completion) pairs inside a batch.
        if self.loss_type == "kto" and self.per_device_batch_size < 2:
            raise ValueError("KTO needs per_device_batch_size >= 2 (its KL estimate pairs examples within a batch)")
        return self


# rft (rejection-sampling fine-tuning) is SFT on a round's positives, with its own YAML section.
CONFIG_CLASSES: dict[str, type[TrainConfigBase]] = {
    "sft": SFTTrainConfig, "dpo": DPOTrainConfig, "kto": KTOTrainConfig, "rft": SFTTrainConfig}
