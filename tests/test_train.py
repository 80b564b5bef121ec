"""Training stages without Ray: configs, TRL row builders and their quarantine, the completion mask."""

from __future__ import annotations

import json

import datasets
import pytest

from orca_math.common.config import ConfigError, load_stage_config
from orca_math.common.prompts import render_prompt
from orca_math.common.records import read_parquet, write_parquet
from orca_math.common.schema import PROBLEM, QUARANTINE, empty_provenance
from orca_math.train.config import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig, TrainScalingConfig
from orca_math.train.core import (
    CHOSEN_EQUALS_REJECTED,
    EMPTY_COMPLETION,
    NOT_A_POSITIVE,
    PROMPT_TOO_LONG,
    SEQUENCE_TOO_LONG,
    dpo_rows,
    kto_rows,
    rft_rows,
    sft_rows,
    trl_columns,
)
from orca_math.train.curves import final_metrics, loss_curve, plot_curves
from orca_math.train.trainers import trl_args, trl_kwargs


def count_words(texts):
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return [len(t.split()) for t in texts]


def cpu(cls, **fields):
    scaling = TrainScalingConfig(use_gpu=False, resources_per_worker={"CPU": 1})
    return cls(**{"bf16": False, "gradient_checkpointing": False, "scaling": scaling, **fields})


# --- configs ---------------------------------------------------------------------------------


def test_defaults_are_the_paper_recipe_and_default_yaml_spells_them_out():
    sft = SFTTrainConfig()
    assert (sft.epochs, sft.learning_rate, sft.lr_scheduler, sft.packing) == (1.0, 1e-6, "constant", False)
    assert sft.bf16 == sft.scaling.use_gpu == "auto" and sft.gradient_checkpointing  # follow the machine
    assert sft.prompt_template == "USER:\n{question}\n\nASSISTANT:\n"
    for algo, cls in (("dpo", DPOTrainConfig), ("kto", KTOTrainConfig)):
        cfg = cls()
        assert (cfg.beta, cfg.learning_rate, cfg.lr_scheduler) == (0.1, 1e-6, "constant")
        assert load_stage_config(cls, "configs/default.yaml", algo) == cfg
    assert load_stage_config(SFTTrainConfig, "configs/default.yaml", "sft") == sft


@pytest.mark.parametrize("algo, cls", [("sft", SFTTrainConfig), ("dpo", DPOTrainConfig), ("kto", KTOTrainConfig)])
def test_tiny_preset_trains_on_cpu_workers(algo, cls):
    cfg = load_stage_config(cls, "tiny", algo)
    assert not cfg.scaling.use_gpu and not cfg.bf16 and cfg.model_dtype == "float32"
    assert cfg.scaling.resources_per_worker == {"CPU": 1}
    assert trl_kwargs(algo, cfg, "/tmp/x")["use_cpu"] is True
    assert cfg.scaling.local_mode and cfg.scaling.in_process  # one machine: no Ray Train actors to start


def test_local_mode_is_ray_trains_own_and_keeps_the_trainers_checkpoints():
    local = TrainScalingConfig(local_mode=True, use_gpu=False)
    assert local.ray_scaling_config().num_workers == 0  # Ray Train's local mode: the loop runs in the caller
    cfg = SFTTrainConfig(scaling=local, checkpoints_to_keep=3)
    assert trl_kwargs("sft", cfg, "/tmp/x")["save_total_limit"] == 3  # they are the checkpoints
    workers = cfg.model_copy(update={"scaling": TrainScalingConfig(local_mode=False, use_gpu=False)})
    assert trl_kwargs("sft", workers, "/tmp/x")["save_total_limit"] == 1  # scratch: Ray storage keeps them
    # More than one worker are always Ray Train actors; local mode is an execution choice, not what is trained.
    two = TrainScalingConfig(local_mode=True, num_workers=2, use_gpu=False)
    assert not two.in_process and two.ray_scaling_config().num_workers == 2
    assert "local_mode" in TrainScalingConfig.execution_fields
    assert not load_stage_config(SFTTrainConfig, "default", "sft").scaling.local_mode


def test_resume_passes_over_a_checkpoint_whose_trainer_state_is_missing_or_half_written(tmp_path):
    from orca_math.train.ray_train import _checkpoint_step, _last_hf_checkpoint

    for step, state in [(3, '{"global_step": 3}'), (6, '{"global_st'), (9, ""), (12, None)]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        if state is not None:  # a kill, or a reader, between open("w") and the last byte
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert _last_hf_checkpoint(tmp_path) == tmp_path / "checkpoint-3"
    assert _checkpoint_step(tmp_path / "checkpoint-3") == 3 and _checkpoint_step(tmp_path / "checkpoint-9") == 0


def test_local_mode_with_a_gpu_asked_for_where_there_is_none_fails_naming_the_settings(monkeypatch):
    from orca_math.common.hardware import Machine
    from orca_math.train import ray_train
    from orca_math.train.ray_train import _check_local_device

    monkeypatch.setattr(ray_train, "this_machine", lambda: Machine(cpu_name="a CPU", cpu_bf16_flag=None))
    with pytest.raises(ValueError, match="scaling.local_mode.*scaling.use_gpu"):
        _check_local_device(True)
    _check_local_device("auto")  # decided by this process: CPU here


@pytest.mark.parametrize("fields, message", [
    ({"fp16": True}, "fp16"),
    ({"deepspeed": {"zero_optimization": {"stage": 3}}}, "deepspeed"),
    ({"fsdp": "full_shard auto_wrap"}, "fsdp"),
    ({"model_dtype": "bfloat16"}, "bfloat16"),
])
def test_gpu_only_settings_are_rejected_on_cpu(fields, message):
    with pytest.raises(ValueError, match=message):
        cpu(SFTTrainConfig, **fields)


def test_sft_can_batch_by_length():
    assert trl_kwargs("sft", cpu(SFTTrainConfig), "/tmp/x")["train_sampling_strategy"] == "random"
    args = trl_args("sft", cpu(SFTTrainConfig, group_by_length=True), "/tmp/x")
    assert args.train_sampling_strategy == "group_by_length"


def test_bf16_on_cpu_is_autocast_over_fp32_weights():
    cfg = cpu(SFTTrainConfig, bf16=True)
    kwargs = trl_kwargs("sft", cfg, "/tmp/x")
    assert kwargs["bf16"] is True and kwargs["use_cpu"] is True
    # Attention follows the precision: eager, measured faster than sdpa under bf16 autocast on CPU.
    assert kwargs["model_init_kwargs"] == {"dtype": "float32", "attn_implementation": "eager"}


@pytest.mark.parametrize("algo, rows", [
    ("sft", {"prompt": ["Q?"], "completion": ["#### 1"]}),
    ("kto", {"prompt": ["Q?", "Q?"], "completion": ["#### 1", "#### 2"], "label": [True, False]}),
])
def test_attention_kernel_reaches_the_policy_and_reference_models(tiny_model, tmp_path, algo, rows):
    from orca_math.train.trainers import build_trainer

    cls = {"sft": SFTTrainConfig, "kto": KTOTrainConfig}[algo]
    default = build_trainer(algo, str(tiny_model), rows, load_stage_config(cls, "tiny", algo), tmp_path / "d")
    assert default.model.config._attn_implementation == "sdpa"
    cfg = load_stage_config(cls, "tiny", algo, {"attn_implementation": "eager"})
    trainer = build_trainer(algo, str(tiny_model), rows, cfg, tmp_path / "e")
    models = [trainer.model] + ([trainer.ref_model] if algo == "kto" else [])
    assert [m.config._attn_implementation for m in models] == ["eager"] * len(models)


@pytest.mark.parametrize("fields, message", [
    ({"bf16": True, "fp16": True}, "exclusive"),
    ({"deepspeed": {"zero_optimization": {"stage": 3}}, "fsdp": "full_shard"}, "exclusive"),
    ({"deepspeed": {"zero_optimization": {"stage": 4}}}, "stage"),
    ({"deepspeed": {"zero_optimization": {"stage": 3}}}, "stage3_gather_16bit_weights_on_model_save"),
    ({"fsdp": "full_shard", "fsdp_config": {"state_dict_type": "SHARDED_STATE_DICT"}}, "FULL_STATE_DICT"),
    ({"fsdp": "full_shard sideways"}, "sideways"),
    ({"fsdp_config": {"min_num_params": 1000}}, "fsdp_config needs fsdp"),
    ({"max_prompt_length": 1024, "max_length": 1024}, "max_prompt_length"),
])
def test_inconsistent_gpu_settings_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        SFTTrainConfig(**fields)


def test_gpu_settings_pass_through_to_trl(tmp_path):
    ds_file = tmp_path / "zero3.json"
    ds = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"},
                                "stage3_gather_16bit_weights_on_model_save": True}, "bf16": {"enabled": True}}
    ds_file.write_text(json.dumps(ds))
    cfg = DPOTrainConfig(deepspeed=str(ds_file), bf16=True, scaling=TrainScalingConfig(num_workers=8, use_gpu=True))
    kwargs = trl_kwargs("dpo", cfg, tmp_path)
    assert kwargs["bf16"] is True and kwargs["gradient_checkpointing"] is True and kwargs["use_cpu"] is False
    assert kwargs["deepspeed"] == ds  # read on the driver: workers need no copy of the file
    fsdp = trl_kwargs("sft", SFTTrainConfig(fsdp="full_shard auto_wrap", fsdp_config={"min_num_params": 10},
                                            scaling={"use_gpu": True}), tmp_path)
    assert fsdp["fsdp"] == "full_shard auto_wrap" and fsdp["fsdp_config"] == {"min_num_params": 10}
    assert fsdp["completion_only_loss"] is True and fsdp["packing"] is False


def test_deepspeed_file_errors_name_the_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("sft:\n  deepspeed: /nope/ds.json\n")
    with pytest.raises(ConfigError) as e:
        load_stage_config(SFTTrainConfig, f, "sft")
    assert e.value.key == "sft.deepspeed" and "does not exist" in e.value.reason


def test_kto_needs_two_examples_per_batch_and_gpu_resources_need_use_gpu():
    with pytest.raises(ValueError, match="per_device_batch_size >= 2"):
        KTOTrainConfig(per_device_batch_size=1)
    assert KTOTrainConfig(per_device_batch_size=1, loss_type="apo_zero_unpaired")
    with pytest.raises(ValueError, match="use_gpu"):
        TrainScalingConfig(use_gpu=False, resources_per_worker={"GPU": 1})


# --- row builders ----------------------------------------------------------------------------


def problem(i, question, solution):
    return ("problems.parquet", i, {"id": f"p{i}", "question": question, "reference_solution": solution,
                                    "reference_answer": "1"})


def test_sft_rows_quarantine_empty_and_too_long_with_reasons():
    problems = [
        problem(0, "What is 1 + 1?", "1 + 1 = 2\n#### 2"),
        problem(1, "What is 2 + 2?", None),
        problem(2, "What is 3 + 3?", "   "),
        problem(3, "word " * 40, "#### 1"),
        problem(4, "What is 4 + 4?", "step " * 40 + "#### 8"),
    ]
    out = sft_rows(problems, "USER:\n{question}\n\nASSISTANT:\n", count_words, max_prompt_length=20, max_length=30)
    assert out.rows == [{"id": "p0", "prompt": render_prompt("What is 1 + 1?"), "completion": "1 + 1 = 2\n#### 2"}]
    assert [(q["row"], q["field"], q["reason"]) for q in out.quarantined] == [
        (1, "reference_solution", EMPTY_COMPLETION),
        (2, "reference_solution", EMPTY_COMPLETION),
        (3, "prompt", PROMPT_TOO_LONG),
        (4, "reference_solution", SEQUENCE_TOO_LONG),
    ]
    assert all(q["source"] == "problems.parquet" and q["stage"] == "sft" for q in out.quarantined)
    assert out.rows_in == 5 and out.counts()["quarantine_reasons"][EMPTY_COMPLETION] == 2


def pair(i, chosen, rejected, prompt="USER:\nq\n\nASSISTANT:\n"):
    return ("pairs.parquet", i, {"pair_id": f"x{i}", "problem_id": "p", "prompt": prompt, "chosen": chosen,
                                 "rejected": rejected})


def test_dpo_rows_quarantine_identical_empty_and_long_pairs():
    pairs = [
        pair(0, "#### 2", "#### 3"),
        pair(1, "#### 2", " #### 2 "),
        pair(2, "#### 2", ""),
        pair(3, "#### 2", "no " * 50),
        pair(4, "#### 2", "#### 3", prompt=""),
    ]
    out = dpo_rows(pairs, count_words, max_prompt_length=10, max_length=20)
    assert [r["id"] for r in out.rows] == ["x0"]
    assert set(out.rows[0]) == {"id", "prompt", "chosen", "rejected"}
    assert [(q["row"], q["field"], q["reason"]) for q in out.quarantined] == [
        (1, "rejected", CHOSEN_EQUALS_REJECTED),
        (2, "rejected", EMPTY_COMPLETION),
        (3, "rejected", SEQUENCE_TOO_LONG),
        (4, "prompt", "empty prompt"),
    ]
    assert out.rows_in == len(out.rows) + len(out.quarantined)


def test_kto_rows_are_shuffled_reproducibly_and_keep_labels():
    examples = [("kto.parquet", i, {"example_id": f"e{i}", "prompt": "USER:\nq\n\nASSISTANT:\n",
                                    "completion": f"#### {i}" if i != 3 else "", "label": i % 2 == 0})
                for i in range(20)]
    a = kto_rows(examples, count_words, max_prompt_length=10, max_length=20, seed=1)
    b = kto_rows(examples, count_words, max_prompt_length=10, max_length=20, seed=1)
    assert a.rows == b.rows and [r["id"] for r in a.rows] != [f"e{i}" for i in range(20) if i != 3]
    assert all(r["label"] == (int(r["id"][1:]) % 2 == 0) for r in a.rows)
    assert [(q["row"], q["reason"]) for q in a.quarantined] == [(3, EMPTY_COMPLETION)]
    assert trl_columns(a.rows, ("prompt", "completion", "label")).keys() == {"prompt", "completion", "label"}


def test_rft_rows_train_on_positives_and_quarantine_negatives():
    examples = [("positives.parquet", i, {"example_id": f"e{i}", "prompt": "USER:\nq\n\nASSISTANT:\n",
                                          "completion": f"#### {i}" if i != 3 else "", "label": i != 5})
                for i in range(8)]
    out = rft_rows(examples, count_words, max_prompt_length=10, max_length=20, seed=1)
    assert sorted(r["id"] for r in out.rows) == ["e0", "e1", "e2", "e4", "e6", "e7"]
    assert [(q["row"], q["field"], q["reason"]) for q in out.quarantined] == [
        (3, "completion", EMPTY_COMPLETION), (5, "label", NOT_A_POSITIVE)]
    assert out.rows_in == len(out.rows) + len(out.quarantined)
    assert trl_columns(out.rows, ("prompt", "completion")).keys() == {"prompt", "completion"}


# --- the completion-only mask ----------------------------------------------------------------


def test_sft_labels_mask_the_prompt_and_keep_the_solution(tiny_model, tmp_path):
    from orca_math.train.trainers import build_trainer, load_tokenizer

    prompt, completion = render_prompt("Tom has 3 apples and buys 4 more. How many?"), "3 + 4 = 7\n#### 7"
    cfg = load_stage_config(SFTTrainConfig, "tiny", "sft", {"max_steps": 1})
    trainer = build_trainer("sft", str(tiny_model), {"prompt": [prompt, render_prompt("Hi?")],
                                                      "completion": [completion, "#### 1"]}, cfg, tmp_path)
    tok = load_tokenizer(str(tiny_model))
    prompt_ids = tok(prompt)["input_ids"]
    example = trainer.train_dataset[0]
    ids, labels = example["input_ids"], example["labels"]
    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [-100] * len(prompt_ids)
    assert labels[len(prompt_ids):] == ids[len(prompt_ids):]
    assert tok.decode(ids[len(prompt_ids):]) == completion + tok.eos_token
    # The collated batch (with right padding) keeps the mask and masks padding too.
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    short = batch["labels"][1].tolist()
    n_short_prompt = len(tok(render_prompt("Hi?"))["input_ids"])
    trained = [t for t in short if t != -100]
    assert short[:n_short_prompt] == [-100] * n_short_prompt
    assert tok.decode(trained) == "#### 1" + tok.eos_token


def test_sft_rows_are_tokenized_in_batch_exactly_as_trl_prepares_them(tiny_model, tmp_path, gsm8k_dir):
    """The trainer gets TRL's own input_ids and labels, row for row, after TRL's truncation and filter."""
    from trl import SFTTrainer

    from orca_math.train.trainers import build_trainer, load_tokenizer, trl_args

    tok = load_tokenizer(str(tiny_model))
    lines = (gsm8k_dir / "train.jsonl").read_text().splitlines()[:40]
    rows = {"prompt": [render_prompt(json.loads(x)["question"]) for x in lines],
            "completion": [json.loads(x)["answer"] for x in lines]}
    rows["completion"][3] += tok.eos_token  # already ends with EOS: not appended twice
    rows["prompt"][5] = "x " * 300  # truncated to max_length with nothing left to learn: dropped
    rows["completion"][7] = " ends on a space"  # tokens can merge across the prompt's end
    cfg = load_stage_config(SFTTrainConfig, "tiny", "sft", {"max_steps": 1, "max_length": 256, "max_prompt_length": 128})
    ours = build_trainer("sft", str(tiny_model), rows, cfg, tmp_path / "ours").train_dataset
    trl = SFTTrainer(model=str(tiny_model), args=trl_args("sft", cfg, tmp_path / "trl"),
                     train_dataset=datasets.Dataset.from_dict(rows), processing_class=tok).train_dataset
    assert len(ours) == len(trl) == 39
    assert ours["input_ids"] == trl["input_ids"] and ours["labels"] == trl["labels"]


def test_the_logits_loss_is_trls_chunked_loss_on_the_solution_tokens(tiny_model, tmp_path):
    """fused_lm_head: false (the demo's faster path) trains on the same loss as TRL's chunked head."""
    import torch
    from trl import SFTTrainer

    from orca_math.train.trainers import build_trainer

    rows = {"prompt": [render_prompt("Tom has 3 apples and buys 4 more. How many?"), render_prompt("Hi?")],
            "completion": ["3 + 4 = 7\n#### 7", "#### 1"]}
    losses = {}
    for fused in (True, False):
        cfg = load_stage_config(SFTTrainConfig, "tiny", "sft", {"max_steps": 1, "fused_lm_head": fused})
        trainer = build_trainer("sft", str(tiny_model), rows, cfg, tmp_path / str(fused))
        assert (type(trainer).compute_loss is SFTTrainer.compute_loss) is fused  # the path the setting picks
        batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
        with torch.no_grad():
            losses[fused] = float(trainer.compute_loss(trainer.model.eval(), dict(batch)))
        if not fused:
            # The same number is not the prompt's: a loss over every token differs.
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            with torch.no_grad():
                everything = float(trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                                 labels=labels).loss)
            assert abs(everything - losses[False]) > 1e-3
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


# --- stage plumbing --------------------------------------------------------------------------


def test_sft_without_trainable_rows_fails_with_the_quarantine_written(tiny_model, tmp_path):
    from orca_math.train.stage import TrainDataError, run_sft

    data = tmp_path / "problems.parquet"
    rows = [{"id": f"p{i}", "question": f"What is {i}?", "reference_solution": None, "reference_answer": str(i),
             "source": "toy", "provenance": empty_provenance()} for i in range(3)]
    write_parquet(rows, PROBLEM, data)
    out = tmp_path / "out"
    with pytest.raises(TrainDataError, match="no trainable rows"):
        run_sft(tiny_model, data, out, load_stage_config(SFTTrainConfig, "tiny", "sft"))
    quarantined = read_parquet(out / "quarantine.parquet", QUARANTINE)
    assert [(q["source"], q["row"], q["reason"]) for q in quarantined] == [
        (str(data), i, EMPTY_COMPLETION) for i in range(3)]
    entry = json.loads((out / "manifest.json").read_text())["stages"]["sft"]
    assert entry["status"] == "failed" and entry["rows_in"] == 3 and entry["rows_quarantined"] == 3


def test_metrics_and_loss_plot_from_log_history(tmp_path):
    history = [{"loss": 2.0, "step": 1, "rewards/margins": 0.1}, {"loss": 1.0, "step": 2, "rewards/margins": 0.5},
               {"train_runtime": 2.0, "step": 2}]
    log = {"log_history": history, "global_step": 2, "resumed_from_step": 0, "steps_this_run": 2,
           "tokens_this_run": 100, "world_size": 1, "train_metrics": {"train_runtime": 2.0, "train_loss": 1.5}}
    m = final_metrics(log)
    assert (m["first_loss"], m["last_loss"], m["train_tokens_per_second"]) == (2.0, 1.0, 50.0)
    assert m["last_rewards_margins"] == 0.5 and loss_curve(history) == [[1, 2.0], [2, 1.0]]
    png = plot_curves(history, tmp_path / "loss.png", "dpo")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_flags_override_the_config_section():
    from orca_math.cli import build_parser
    from orca_math.train.cli import _config

    args = build_parser().parse_args([
        "train-pref", "--algo", "kto", "--model", "m", "--data", "d", "--out", "o", "--config", "tiny",
        "--max-steps", "7", "--num-workers", "2", "--save-steps", "3"])
    cfg = _config(args.algo, args)
    assert isinstance(cfg, KTOTrainConfig)
    assert (cfg.max_steps, cfg.scaling.num_workers, cfg.save_steps) == (7, 2, 3)
    assert cfg.scaling.use_gpu is False  # the rest still comes from configs/tiny.yaml
    sft = build_parser().parse_args(["sft", "--model", "m", "--data", "gsm8k-train", "--out", "o"])
    assert _config("sft", sft) == SFTTrainConfig()  # no --config: the paper's defaults


def test_rft_rows_quarantine_each_negative_at_its_own_row_even_with_repeated_ids():
    negative = {"example_id": "same", "prompt": "USER:\nq\n\nASSISTANT:\n", "completion": "#### 1", "label": False}
    examples = [("positives.parquet", 0, {**negative, "example_id": "p", "label": True}),
                ("positives.parquet", 1, negative), ("positives.parquet", 2, negative)]
    out = rft_rows(examples, count_words, max_prompt_length=10, max_length=20)
    assert [r["id"] for r in out.rows] == ["p"]
    assert [(q["row"], q["reason"]) for q in out.quarantined] == [(1, NOT_A_POSITIVE), (2, NOT_A_POSITIVE)]


def test_time_cap_stops_training_once_the_loop_has_run_long_enough():
    from types import SimpleNamespace

    from orca_math.train.ray_train import _budget

    cap, control = _budget(max_time_s=0.05), SimpleNamespace(should_training_stop=False)
    cap.on_train_begin(None, None, control)
    cap.on_step_end(None, None, control)
    assert not control.should_training_stop and not cap.hit  # a fast machine never meets the cap
    import time

    time.sleep(0.06)
    cap.on_step_end(None, None, control)
    assert control.should_training_stop and cap.hit == "time"


def test_the_schedule_is_fitted_to_the_time_cap_only_where_the_clock_runs_out_first(monkeypatch):
    """Cut by the clock, a cosine made for max_steps would stop near its peak; fitted, it anneals."""
    from types import SimpleNamespace

    import torch
    from transformers import get_cosine_schedule_with_warmup

    import orca_math.train.ray_train as rt

    def lrs(clock: list[float], steps: int, first_step_s: float | None = None) -> list[float]:
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=100)
        monkeypatch.setattr(rt, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
        cap, control = rt._budget(max_time_s=10.0), SimpleNamespace(should_training_stop=False)
        cap.on_train_begin(None, None, control)
        state = SimpleNamespace(max_steps=100, num_input_tokens_seen=0)
        out = []
        for i in range(steps):
            cap.on_step_begin(None, state, control, lr_scheduler=sched)
            opt.step()
            sched.step()
            clock[0] += first_step_s if i == 0 and first_step_s is not None else step_s
            cap.on_step_end(None, state, control)
            out.append(opt.param_groups[0]["lr"])
        return out, control.should_training_stop

    step_s = 0.05  # 100 steps in 5 s: the steps finish first and the schedule is the plain cosine
    fast, stopped = lrs([0.0], 100)
    plain = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = get_cosine_schedule_with_warmup(plain, num_warmup_steps=0, num_training_steps=100)
    expected = []
    for _ in range(100):
        plain.step()
        ref.step()
        expected.append(plain.param_groups[0]["lr"])
    assert fast == pytest.approx(expected) and not stopped
    # A slow first step (kernels built, the longest batch first) on a machine that finishes inside
    # the cap leaves the schedule alone: read from the first step, the clock moved the warm-up and
    # two runs of one command differed.
    slow_start, stopped = lrs([0.0], 100, first_step_s=0.3)
    assert slow_start == pytest.approx(expected) and not stopped
    step_s = 0.25  # 40 steps in 10 s: the clock decides, and the last step's lr is ~0, not ~0.65
    slow, stopped = lrs([0.0], 40)
    assert stopped
    assert slow[-1] < 0.01 < expected[39]
    assert all(a >= b for a, b in zip(slow, slow[1:]))  # still a decaying schedule


def test_a_token_budget_stops_training_and_the_schedule_anneals_on_it():
    """The SFT control gets the rounds' tokens: with longer sequences than max_steps was sized for,
    the tokens run out first, and the cosine ends there, not near its peak."""
    from types import SimpleNamespace

    import torch
    from transformers import get_cosine_schedule_with_warmup

    from orca_math.train.ray_train import _budget

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=100)
    cap, control = _budget(max_tokens=5000), SimpleNamespace(should_training_stop=False)
    state = SimpleNamespace(max_steps=100, num_input_tokens_seen=0)
    cap.on_train_begin(None, state, control)
    lrs = []
    while not control.should_training_stop:
        cap.on_step_begin(None, state, control, lr_scheduler=sched)
        state.num_input_tokens_seen += 100  # 50 steps of 100 tokens: half of max_steps
        opt.step()
        sched.step()
        cap.on_step_end(None, state, control)
        lrs.append(opt.param_groups[0]["lr"])
    assert len(lrs) == 50 and cap.hit == "tokens"
    assert lrs[-1] < 0.01 and lrs[24] == pytest.approx(0.5, abs=0.05)  # the whole cosine in 50 steps
