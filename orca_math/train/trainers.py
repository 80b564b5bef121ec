"""Our configs -> TRL ``SFTTrainer`` / ``DPOTrainer`` / ``KTOTrainer``, with no Ray in sight.

The Ray Train loop and the bare-process benchmark both build their trainer here, so they run the
very same TRL code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from orca_math.common.hardware import choose_attention, choose_precision, this_machine
from orca_math.common.prompts import CHAT_TEMPLATE
from orca_math.train.config import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig, TrainConfigBase
from orca_math.train.core import DPO_COLUMNS, KTO_COLUMNS, SFT_COLUMNS

TRL_COLUMNS = {"sft": SFT_COLUMNS, "dpo": DPO_COLUMNS, "kto": KTO_COLUMNS}


def load_tokenizer(model: str):
    """The model's tokenizer, with our chat template when it has none, so the output folder carries one."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def deepspeed_dict(value: dict[str, Any] | str | None) -> dict[str, Any] | None:
    """A DeepSpeed config as a mapping (a file is read on the driver, so workers need no copy)."""
    if isinstance(value, str):
        return json.loads(Path(value).read_text(encoding="utf-8"))
    return value


def resolve_on_worker(cfg: TrainConfigBase) -> tuple[TrainConfigBase, dict[str, Any]]:
    """``cfg`` with its ``auto`` device, precision and attention settings decided for this process's
    machine (a Ray Train worker decides for its own node), and the record of what was chosen and why."""
    machine = this_machine()
    on_gpu = machine.cuda if cfg.scaling.use_gpu == "auto" else bool(cfg.scaling.use_gpu)
    precision = choose_precision(cfg.bf16, cfg.fp16, on_gpu, machine)
    attn = choose_attention(cfg.attn_implementation, precision, on_gpu)
    resolved = cfg.model_copy(update={
        "bf16": precision.bf16, "fp16": precision.fp16, "attn_implementation": attn,
        "scaling": cfg.scaling.model_copy(update={"use_gpu": on_gpu})})
    return resolved, {**precision.record(machine), "attn_implementation": attn or "sdpa (transformers' default)"}


def trl_kwargs(algo: str, cfg: TrainConfigBase, output_dir: str | Path) -> dict[str, Any]:
    """Keyword arguments of the TRL config class for ``algo`` equivalent to ``cfg`` (GPU settings included).

    ``auto`` settings are decided for the machine this runs on (``resolve_on_worker``)."""
    cfg, _ = resolve_on_worker(cfg)
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        seed=cfg.seed,
        bf16=cfg.bf16,
        fp16=cfg.fp16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        deepspeed=deepspeed_dict(cfg.deepspeed),
        optim=cfg.optim,
        use_cpu=not cfg.scaling.use_gpu,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        # In local mode they are the checkpoints. On Ray Train workers they are scratch copies that
        # Ray Train deletes once stored (on every rank; the trainer's rotation runs on rank 0 only).
        save_total_limit=cfg.checkpoints_to_keep if cfg.scaling.in_process else 1,
        report_to=list(cfg.report_to) or "none",
        disable_tqdm=True,
        max_length=cfg.max_length,
        model_init_kwargs={"dtype": cfg.model_dtype,
                           **({"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {})},
        dataloader_num_workers=0,
        # A causal LM uses every parameter; looking for unused ones costs a graph walk per step.
        ddp_find_unused_parameters=False,
        include_num_input_tokens_seen="non_padding",
    )
    if cfg.fsdp:
        kwargs.update(fsdp=cfg.fsdp, fsdp_config=cfg.fsdp_config)
    if algo == "sft":
        assert isinstance(cfg, SFTTrainConfig)
        kwargs.update(completion_only_loss=True, packing=cfg.packing,
                      train_sampling_strategy="group_by_length" if cfg.group_by_length else "random")
    elif algo == "dpo":
        assert isinstance(cfg, DPOTrainConfig)
        losses = cfg.loss_type if isinstance(cfg.loss_type, list) else [cfg.loss_type]
        kwargs.update(beta=cfg.beta, loss_type=list(losses), loss_weights=cfg.loss_weights,
                      precompute_ref_log_probs=cfg.precompute_ref_log_probs)
    elif algo == "kto":
        assert isinstance(cfg, KTOTrainConfig)
        kwargs.update(beta=cfg.beta, loss_type=cfg.loss_type, desirable_weight=cfg.desirable_weight,
                      undesirable_weight=cfg.undesirable_weight,
                      precompute_ref_log_probs=cfg.precompute_ref_log_probs)
    else:
        raise ValueError(f"unknown algo {algo!r}: use sft, dpo or kto")
    return kwargs


def trl_args(algo: str, cfg: TrainConfigBase, output_dir: str | Path):
    """The TRL config object (a ``TrainingArguments``) equivalent to ``cfg``."""
    from trl import DPOConfig, KTOConfig, SFTConfig

    config_cls = {"sft": SFTConfig, "dpo": DPOConfig, "kto": KTOConfig}[algo]
    return config_cls(**trl_kwargs(algo, cfg, output_dir))


def trl_dataset(algo: str, columns: dict[str, list], tokenizer):
    """A ``datasets.Dataset`` with just the columns the algorithm's TRL trainer reads; for SFT, already
    tokenized with ``tokenizer`` as TRL would (``sft_tokenized``)."""
    import datasets

    missing = [c for c in TRL_COLUMNS[algo] if c not in columns]
    if missing:
        raise ValueError(f"{algo} rows lack column(s) {missing}")
    if algo == "sft":
        return datasets.Dataset.from_dict(sft_tokenized(columns["prompt"], columns["completion"], tokenizer))
    return datasets.Dataset.from_dict({c: columns[c] for c in TRL_COLUMNS[algo]})


def sft_tokenized(prompts: Sequence[str], completions: Sequence[str], tokenizer) -> dict[str, list]:
    """Prompt/completion text -> ``input_ids`` and ``labels`` (-100 over the prompt), exactly as TRL's
    ``SFTTrainer._prepare_dataset`` builds them with ``completion_only_loss`` (EOS appended, the completion
    starting where prompt and prompt + completion tokenize differently), in two batched tokenizer calls.
    TRL tokenizes row by row, a Python call each: ~8 s of a training stage on the demo's 19K rows.
    TRL still truncates to ``max_length`` and drops rows left without a label."""
    from trl.data_utils import common_prefix_length

    eos = tokenizer.eos_token
    completions = [c if c.endswith(eos) else c + eos for c in completions]
    prompt_ids = tokenizer(list(prompts))["input_ids"]
    full_ids = tokenizer([p + c for p, c in zip(prompts, completions, strict=True)])["input_ids"]
    labels = []
    for prompt, full in zip(prompt_ids, full_ids):
        start = common_prefix_length(prompt, full)
        labels.append([-100] * start + full[start:])
    return {"input_ids": full_ids, "labels": labels}


def build_trainer(
    algo: str,
    model: str,
    columns: dict[str, list],
    cfg: TrainConfigBase,
    output_dir: str | Path,
    callbacks: Sequence[Any] = (),
):
    """A TRL trainer for ``algo`` on ``columns`` (TRL rows, column-major), starting from ``model``.

    The model is passed by path so DPO/KTO load their frozen reference from the same weights:
    the reference is always the round's starting model.
    """
    from trl import DPOTrainer, KTOTrainer, SFTTrainer

    trainer_cls = {"sft": SFTTrainer, "dpo": DPOTrainer, "kto": KTOTrainer}[algo]
    if isinstance(cfg, SFTTrainConfig) and not cfg.fused_lm_head:
        trainer_cls = _logits_sft_trainer()
    tokenizer = load_tokenizer(model)
    return trainer_cls(
        model=model,
        args=trl_args(algo, cfg, output_dir),
        train_dataset=trl_dataset(algo, columns, tokenizer),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def _logits_sft_trainer():
    """``SFTTrainer`` whose loss is the model's own cross-entropy over the full logits.

    TRL's chunked LM head (log-probs of the solution tokens in tiles, plus entropy and token
    accuracy for its logs) took 37% of a step for the demo's tiny student on a CPU; the labels
    already mask the prompt with -100, so the model's own loss is the same number (the logged
    losses of 150 steps agreed to 2-3 decimals, measured) at 1.4x the steps per second under bf16 autocast (in fp32: the same speed).
    """
    from transformers import Trainer
    from trl import SFTTrainer

    class LogitsSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    return LogitsSFTTrainer
