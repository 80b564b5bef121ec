"""The GPU training path: TRL's SFT, DPO and KTO trainers on CUDA with what ``auto`` picks there.

CI has no GPU, so these skip there. On a GPU machine: ``pytest -m gpu -s`` (torch with CUDA and
the project's other dependencies; Ray and vLLM are not needed). The Ray Train shell around these
trainers (``fit_on_ray``) is the same on both devices and is tested on CPU.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from orca_math.common.hardware import choose_vllm_dtype, this_machine  # noqa: E402
from orca_math.common.prompts import DEFAULT_PROMPT_TEMPLATE, render_prompt  # noqa: E402
from orca_math.train.config import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig  # noqa: E402
from orca_math.train.core import SFT_COLUMNS, sft_rows, tokenizer_counter, trl_columns  # noqa: E402
from orca_math.train.ray_train import _budget  # noqa: E402
from orca_math.train.trainers import build_trainer, load_tokenizer, resolve_on_worker, trl_kwargs  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# Small, fast steps: the checks are about where and in what precision the math runs, and that it learns.
STEP = {"per_device_batch_size": 32, "gradient_accumulation_steps": 1, "logging_steps": 10, "save_steps": 10_000,
        "lr_scheduler": "cosine", "warmup_steps": 10}


def world_sft_columns(model: str, n: int) -> dict[str, list]:
    from orca_math.world.config import WorldConfig
    from orca_math.world.core import generate_problems

    problems = generate_problems("train", n, WorldConfig(max_steps=1, max_value=20)).rows
    built = sft_rows([("world-train", i, p) for i, p in enumerate(problems)], DEFAULT_PROMPT_TEMPLATE,
                     tokenizer_counter(load_tokenizer(model)), 256, 512)
    return trl_columns(built.rows, SFT_COLUMNS)


def devices_and_dtypes(model) -> set[tuple[str, torch.dtype]]:
    return {(p.device.type, p.dtype) for p in model.parameters()}


def logged(trainer, key: str) -> list[float]:
    return [h[key] for h in trainer.state.log_history if key in h]


def test_auto_picks_the_gpu_bf16_and_sdpa_on_a_gpu_machine(tmp_path):
    cfg = SFTTrainConfig()  # use_gpu, bf16 and fp16 are auto; attention unset
    resolved, record = resolve_on_worker(cfg)
    name = torch.cuda.get_device_name(0)
    assert resolved.scaling.use_gpu is True and (resolved.bf16, resolved.fp16) == (True, False)
    assert record["reason"] == f"auto: {name} supports bf16" and record["machine"]["gpu_name"] == name
    assert resolved.attn_implementation is None  # sdpa: flash/mem-efficient kernels on a GPU
    kwargs = trl_kwargs("sft", cfg, tmp_path)
    assert (kwargs["use_cpu"], kwargs["bf16"], kwargs["fp16"]) == (False, True, False)
    assert choose_vllm_dtype("auto", True, this_machine()) == "bfloat16"


def test_sft_trains_on_the_gpu_under_bf16_autocast_and_learns(tiny_model, tmp_path):
    columns = world_sft_columns(str(tiny_model), 1024)
    cap = _budget(max_tokens=2_000_000)  # a budget that does not bind: the callback runs on the GPU path too
    cfg = SFTTrainConfig(learning_rate=2e-3, max_steps=150, **STEP)  # gradient checkpointing on: the default
    trainer = build_trainer("sft", str(tiny_model), columns, cfg, tmp_path / "sft", [cap])
    assert trainer.args.bf16 and not trainer.args.use_cpu and trainer.args.gradient_checkpointing
    # Mixed precision: fp32 master weights on the GPU, bf16 inside the autocast.
    assert devices_and_dtypes(trainer.model) == {("cuda", torch.float32)}
    out = trainer.train()
    losses = logged(trainer, "loss")
    assert trainer.state.global_step == 150 and cap.hit is None
    assert losses[-1] < 0.5 * losses[0], losses
    tokens = trainer.state.num_input_tokens_seen
    print(f"\nGPU SFT ({torch.cuda.get_device_name(0)}): {tokens} tokens in {out.metrics['train_runtime']:.1f} s "
          f"= {tokens / out.metrics['train_runtime']:,.0f} tokens/s; loss {losses[0]:.3f} -> {losses[-1]:.3f}")

    trainer.model.config.use_cache = True
    trainer.save_model(tmp_path / "m1")
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m1").to("cuda")
    tok = load_tokenizer(str(tmp_path / "m1"))
    batch = tok([columns["prompt"][0]], return_tensors="pt").to("cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        ids = reloaded.generate(**batch, max_new_tokens=48, do_sample=False)
    text = tok.decode(ids[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "####" in text, text  # it learned the answer format


def test_a_token_budget_stops_gpu_training(tiny_model, tmp_path):
    columns = world_sft_columns(str(tiny_model), 256)
    cap = _budget(max_tokens=20_000)
    trainer = build_trainer("sft", str(tiny_model), columns, SFTTrainConfig(max_steps=500, **STEP),
                            tmp_path / "budget", [cap])
    trainer.train()
    assert cap.hit == "tokens" and trainer.state.global_step < 500
    assert 20_000 <= trainer.state.num_input_tokens_seen < 20_000 + 32 * 512


def preference_rows(n: int) -> list[tuple[str, str, str]]:
    """(prompt, right solution, wrong solution): one-step sums, the wrong one off by one."""
    rows = []
    for i in range(n):
        a, b = 3 + i % 17, 2 + (i * 7) % 13
        rows.append((render_prompt(f"Ana has {a} pens and buys {b} more. How many pens does she have?"),
                     f"{a} + {b} = {a + b}\n#### {a + b}", f"{a} + {b} = {a + b + 1}\n#### {a + b + 1}"))
    return rows


def test_dpo_trains_policy_and_reference_on_the_gpu(tiny_model, tmp_path):
    rows = preference_rows(128)
    columns = {"prompt": [r[0] for r in rows], "chosen": [r[1] for r in rows], "rejected": [r[2] for r in rows]}
    cfg = DPOTrainConfig(learning_rate=1e-3, max_steps=40, **STEP)
    trainer = build_trainer("dpo", str(tiny_model), columns, cfg, tmp_path / "dpo")
    assert trainer.args.bf16 and not trainer.args.use_cpu
    assert devices_and_dtypes(trainer.model) == devices_and_dtypes(trainer.ref_model) == {("cuda", torch.float32)}
    before = {k: v.clone() for k, v in trainer.ref_model.state_dict().items()}
    trainer.train()
    margins = logged(trainer, "rewards/margins")
    assert margins[-1] > max(0.2, margins[0] + 0.2), margins  # the right solution pulled ahead of the wrong one
    # Only the policy moved: the reference is the round's starting model throughout.
    assert all(torch.equal(v, before[k]) for k, v in trainer.ref_model.state_dict().items())


def test_kto_trains_on_the_gpu_with_desirable_and_undesirable_examples(tiny_model, tmp_path):
    rows = preference_rows(64)
    columns = {"prompt": [r[0] for r in rows for _ in (0, 1)],
               "completion": [c for r in rows for c in (r[1], r[2])],
               "label": [label for _ in rows for label in (True, False)]}
    cfg = KTOTrainConfig(learning_rate=1e-3, max_steps=40, **STEP)
    trainer = build_trainer("kto", str(tiny_model), columns, cfg, tmp_path / "kto")
    assert trainer.args.bf16 and not trainer.args.use_cpu
    assert devices_and_dtypes(trainer.model) == devices_and_dtypes(trainer.ref_model) == {("cuda", torch.float32)}
    trainer.train()
    margins = logged(trainer, "rewards/margins")
    assert margins[-1] > 0.5, margins
