"""`orca-math plan`: the memory model against library estimators and published figures, every stage
of the 7B preset on cluster.yaml's GPUs, and the reasons a run cannot start."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from orca_math.common.config import ConfigFile
from orca_math.plan.config import PlanConfig
from orca_math.plan.core import checkpoint_share, infeasible, load_cluster, plan_run, shared_roots
from orca_math.plan.memory import KNOWN_MODELS, ModelShape, shape_from_config_json, training_memory
from orca_math.run.config import StageConfigs

REPO = Path(__file__).resolve().parents[1]
MISTRAL = REPO / "configs/orca_math_mistral7b.yaml"
SHARED_RUN = "/mnt/shared/runs/mistral7b"
P7B = KNOWN_MODELS["mistralai/Mistral-7B-v0.1"].params


@pytest.fixture(scope="module")
def cluster_file(tmp_path_factory) -> Path:
    """cluster.yaml with its shared file system's placeholder filled in, as a user would before `ray up`."""
    path = tmp_path_factory.mktemp("cluster") / "cluster.yaml"
    path.write_text((REPO / "cluster.yaml").read_text().replace("CHANGE-ME", "0123abcd"))
    return path


@pytest.fixture(scope="module")
def cluster(cluster_file) -> dict:
    return load_cluster(cluster_file)


def preset(algo: str = "kto", **settings) -> StageConfigs:
    """The 7B preset with ``run.preference_algo`` = algo and ``--set``-style settings over it."""
    return StageConfigs.load(ConfigFile(MISTRAL, (("run.preference_algo", algo), *settings.items())))


# --------------------------------------------------------------------------- the memory model


@pytest.mark.parametrize("model_id", ["mistralai/Mistral-7B-v0.1", "Qwen/Qwen2.5-7B"])
def test_known_shapes_count_the_parameters_transformers_builds(model_id):
    import torch
    from accelerate.utils import calculate_maximum_sizes
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

    s = replace(KNOWN_MODELS[model_id], layers=2)  # the count is linear in the blocks: two are quick to build
    cls = {"mistralai": MistralConfig, "meta-llama": LlamaConfig, "Qwen": Qwen2Config}[model_id.split("/")[0]]
    config = cls(hidden_size=s.hidden, num_hidden_layers=s.layers, intermediate_size=s.intermediate,
                 num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, vocab_size=s.vocab,
                 tie_word_embeddings=s.tied)
    with torch.device("meta"):  # shapes only, no memory
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == s.params
    total, (largest, _) = calculate_maximum_sizes(model)  # fp32 bytes, accelerate's estimate-memory
    assert 0 <= total - 4 * s.params < 4096  # beside the parameters: rotary buffers
    assert largest == 4 * max(s.block_params, s.vocab * s.hidden)  # accelerate's: a decoder block or the embedding
    # DeepSpeed's largest layer is the largest single module: the embedding here
    assert s.largest_layer == max(m.weight.numel() for m in model.modules() if hasattr(m, "weight"))
    if model_id.startswith("mistralai"):
        assert round(KNOWN_MODELS[model_id].params / 1e9, 2) == 7.24


def _trainer(**update):
    from orca_math.train.config import DPOTrainConfig

    return DPOTrainConfig().model_copy(update=update)


def test_unsharded_fp32_adam_is_16_bytes_a_parameter_as_accelerate_and_the_zero_paper_say():
    from accelerate.commands.estimate import estimate_training_usage

    est = training_memory("sft", _trainer(), KNOWN_MODELS["mistralai/Mistral-7B-v0.1"], True, 3.0)
    states = est.parts["weights"] + est.parts["gradients"] + est.parts["Adam moments"]
    acc = estimate_training_usage(4 * P7B, "float32")
    assert states == acc["model"] + acc["gradients"] + acc["optimizer"] == 16 * P7B


def _zero(stage: int, n: int = 8, **zero):
    from orca_math.train.config import TrainScalingConfig

    ds = {"zero_optimization": {"stage": stage, "stage3_gather_16bit_weights_on_model_save": True, **zero}}
    return _trainer(deepspeed=ds, model_dtype="bfloat16", bf16=True,
                    scaling=TrainScalingConfig(num_workers=n, use_gpu=True))


def test_zero3_states_are_the_zero_papers_16_bytes_sharded_plus_deepspeeds_buffers():
    shape = KNOWN_MODELS["mistralai/Mistral-7B-v0.1"]
    states = training_memory("sft", _zero(3), shape, True, 3.0).parts["model states (ZeRO-3)"]
    paper = 16 * P7B / 8  # 14.5 GB: CLUSTER-NOTES, ZeRO paper (Rajbhandari et al. 2020, Fig. 1)
    assert paper < states < paper * 1.2
    assert states / 1e9 == pytest.approx(16.8, abs=0.1)


def test_zero_states_equal_deepspeeds_own_estimators():
    """DeepSpeed is not a CPU dependency; where it is importable its estimators are the reference."""
    stage3 = pytest.importorskip("deepspeed.runtime.zero.stage3")
    stage12 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
    shape = KNOWN_MODELS["mistralai/Mistral-7B-v0.1"]
    for n in (1, 8, 16):
        ours3 = training_memory("sft", _zero(3, n), shape, True, 0).parts["model states (ZeRO-3)"]
        _, gpu3, _ = stage3.estimate_zero3_model_states_mem_needs(P7B, shape.largest_layer, n, 1, cpu_offload=False)
        assert ours3 == pytest.approx(gpu3, rel=1e-6)
        off = training_memory("sft", _zero(3, n, offload_optimizer={"device": "cpu"}), shape, True, 0)
        _, gpu3o, _ = stage3.estimate_zero3_model_states_mem_needs(P7B, shape.largest_layer, n, 1, cpu_offload=True,
                                                                  cpu_offload_params=False)
        assert off.parts["model states (ZeRO-3)"] == pytest.approx(gpu3o, rel=1e-6)
        ours2 = training_memory("sft", _zero(2, n), shape, True, 0).parts["model states (ZeRO-2)"]
        _, gpu2 = stage12.estimate_zero2_model_states_mem_needs(P7B, n, 1, cpu_offload=False)
        assert ours2 == pytest.approx(gpu2, rel=1e-6)


def test_gradient_checkpointing_keeps_one_block_of_activations_not_all():
    shape = KNOWN_MODELS["mistralai/Mistral-7B-v0.1"]
    on = training_memory("sft", _zero(3), shape, True, 0)
    off = training_memory("sft", _zero(3).model_copy(update={"gradient_checkpointing": False}), shape, True, 0)
    act_on = on.parts["checkpointed block inputs"] + on.parts["one block recomputed"]
    assert off.parts["activations"] > 10 * act_on
    # 4 x 1024 tokens x 4096 x 2 bytes x 32 blocks: CLUSTER-NOTES' ~1.1 GB of checkpointed inputs
    assert on.parts["checkpointed block inputs"] == 4 * 1024 * 4096 * 2 * 32


def test_kv_cache_per_token_is_128_kib_for_mistral():
    assert KNOWN_MODELS["mistralai/Mistral-7B-v0.1"].kv_bytes_per_token(2) == 128 * 1024


def test_a_local_student_folder_is_read_from_its_config_json(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, '
                                          '"num_attention_heads": 2, "vocab_size": 100, "tie_word_embeddings": true}')
    assert shape_from_config_json(tmp_path) == ModelShape(64, 2, 128, 2, 2, 100, tied=True)
    (tmp_path / "config.json").write_text('{"hidden_size": 64}')
    with pytest.raises(ValueError, match="config.json: no 'num_hidden_layers'"):
        shape_from_config_json(tmp_path)


# ------------------------------------------------------------------- the 7B preset on cluster.yaml


@pytest.mark.parametrize("algo", ["kto", "dpo", "rft"])
def test_every_stage_of_the_mistral_preset_fits_its_gpus_with_10_percent_headroom(algo, cluster):
    plan = plan_run(preset(algo), cluster, run_dir=SHARED_RUN)
    assert plan.problems == []
    gpu_stages = [s for s in plan.stages if s.memory is not None]
    assert {s.name for s in gpu_stages} >= {"sft", f"{algo}-1", f"{algo}-2", "eval-M1", "practice-1"}
    for s in gpu_stages:
        assert s.memory.fits(0.10), s.memory.describe()
        assert s.memory.gpu == ("A100-40GB" if s.where == "gpu_trainer" else "L40S-48GB")
    trainers = {s.name: s for s in gpu_stages if s.where == "gpu_trainer"}
    assert set(trainers) == {"sft", f"{algo}-1", f"{algo}-2"}
    assert all(s.gpus == 8 and s.workers == 8 for s in trainers.values())


def test_todays_single_worker_fp32_dpo_is_refused_with_the_numbers(cluster):
    """The preset's dpo section as it was: default.yaml's one fp32 worker without DeepSpeed."""
    cfgs = StageConfigs.load(ConfigFile(REPO / "configs/default.yaml", (("run.preference_algo", "dpo"),)))
    assert cfgs.pref_train.scaling.num_workers == 1 and cfgs.pref_train.deepspeed is None
    problems = infeasible(cfgs, cluster, SHARED_RUN)
    dpo = [p for p in problems if p.startswith("dpo-1: does not fit")]
    assert len(dpo) == 2  # it may land on either GPU node type: neither holds it
    assert any("A100-40GB" in p and "gpu_trainer" in p for p in dpo)
    assert any("L40S-48GB" in p and "gpu_sampler" in p for p in dpo)
    line = dpo[0]
    # 7.24B x 4 bytes = 27.0 GiB each for weights, gradients and the fp32 reference; Adam twice that
    for term in ("weights 27.0", "gradients 27.0", "Adam moments 54.0", "reference model 27.0"):
        assert term in line
    total = float(line.split("dpo worker: ")[1].split(" GiB")[0])
    assert total > 135


def test_the_7b_preset_trains_16_per_device_with_one_accumulation_and_groups_sft_by_length():
    cfgs = preset("kto")
    for cfg in (cfgs.sft, cfgs.pref_train):
        assert (cfg.per_device_batch_size, cfg.gradient_accumulation_steps, cfg.scaling.num_workers) == (16, 1, 8)
    assert cfgs.sft.group_by_length and preset("rft").pref_train.group_by_length
    dpo = preset("dpo").pref_train  # two sequences an example: 8 x 2 keeps 16 sequences a forward pass
    assert dpo.per_device_batch_size * dpo.gradient_accumulation_steps == 16
    assert dpo.deepspeed["zero_optimization"]["stage"] == 3 and dpo.scaling.resources_per_worker["trainer"] == 1


@pytest.mark.parametrize("algo", ["kto", "dpo", "rft"])
def test_checkpoints_cost_under_5_percent_of_training_in_the_7b_preset(algo):
    cfgs = preset(algo)
    for stage in ("sft", f"{algo}-1"):
        assert 0 < checkpoint_share(stage, cfgs) < 0.05, stage
    # the default cadence (a save every 200 steps) would cost far more
    assert checkpoint_share("sft", preset(algo, **{"train.save_steps": 200})) > 0.25


def test_plan_counts_judge_calls_and_exact_then_llm_saves_most_of_them(cluster):
    llm = plan_run(preset("kto"), cluster, PlanConfig(problems=200_000), SHARED_RUN)
    mixed = plan_run(preset("kto", **{"judge.method": "exact_then_llm"}), cluster, PlanConfig(problems=200_000),
                     SHARED_RUN)
    judge = [s for s in llm.stages if s.name.startswith("judge-")]
    assert [s.calls for s in judge] == [800_000, 800_000]  # 200K problems x 4 samples, one call each
    assert judge[0].api_cost == pytest.approx(800_000 * (800 * 10 + 200 * 30) / 1e6)
    saved = llm.totals()["api_cost"] - mixed.totals()["api_cost"]
    judge_cost = sum(s.api_cost for s in llm.stages if s.name.startswith(("judge-", "eval-")))
    assert saved == pytest.approx(judge_cost * (1 - PlanConfig().judge_undecided_fraction))


def test_paper_scale_totals_match_the_published_throughput_arithmetic(cluster):
    plan = plan_run(preset("kto"), cluster, PlanConfig(problems=200_000), SHARED_RUN)
    t = plan.totals()
    # CLUSTER-NOTES: ~300-325 A100-hours and ~45 L40S-hours from published 7B throughputs; plan adds
    # stage start-ups, checkpoint time and vLLM's 80% efficiency, and group_by_length takes padding away.
    assert 250 < t["gpu_hours"]["A100-40GB"] < 400
    assert 30 < t["gpu_hours"]["L40S-48GB"] < 80
    assert t["api_cost"] > 10 * t["gpu_cost"]  # the LLM judge is the bill


# ------------------------------------------------------------------------- reasons not to start


def test_the_shipped_cluster_files_placeholder_and_relative_folders_are_refused(cluster):
    shipped = load_cluster(REPO / "cluster.yaml")
    if "CHANGE-ME" in (REPO / "cluster.yaml").read_text():
        assert any("placeholder" in p for p in infeasible(preset(), shipped, SHARED_RUN))
    relative = infeasible(preset(), cluster, "runs/mistral7b")
    assert len(relative) == 1 and "relative" in relative[0] and "ray job submit" in relative[0]
    unshared = infeasible(preset(), cluster, "/home/ubuntu/runs/x")
    assert len(unshared) == 1 and "not under a path the cluster shares" in unshared[0]
    assert "/mnt/shared" in shared_roots(cluster, PlanConfig())
    assert infeasible(preset(), cluster, "/home/ubuntu/runs/x", PlanConfig(shared_paths=["/home/ubuntu"])) == []


def test_a_resource_no_node_type_offers_is_refused(cluster):
    cfgs = preset("kto", **{"sft.scaling.resources_per_worker": {"CPU": 8, "GPU": 1, "nvme": 1}})
    problems = infeasible(cfgs, cluster, SHARED_RUN)
    assert len(problems) == 1 and "8 training worker(s)" in problems[0] and "nvme" in problems[0]


def test_a_self_hosted_teacher_that_can_take_a_sampler_gpu_is_refused(cluster):
    settings = {"teacher.base_url": "http://head:8000/v1", "serve.teacher.accelerator": "gpu"}
    problems = infeasible(preset("kto", **settings), cluster, SHARED_RUN)
    assert len(problems) == 1 and "teacher" in problems[0] and "gpu_sampler" in problems[0]
    # with fewer practice engines the teacher has a GPU of its own
    assert infeasible(preset("kto", **settings, **{"practice.engine.concurrency": 15}), cluster, SHARED_RUN) == []
    # pinned to a node type the engines do not use, it takes none of theirs; pinned to nothing, it never starts
    assert infeasible(preset("kto", **settings, **{"serve.teacher.resources": {"trainer": 1}}), cluster,
                      SHARED_RUN) == []
    nowhere = infeasible(preset("kto", **settings, **{"serve.teacher.resources": {"teacher": 1}}), cluster, SHARED_RUN)
    assert len(nowhere) == 1 and "teacher's replicas" in nowhere[0] and "teacher: 1" in nowhere[0]


def test_an_unknown_student_or_gpu_leaves_memory_unchecked_without_stopping_the_run(cluster):
    plan = plan_run(preset("kto", **{"run.student": "someone/unknown-13b"}), cluster, run_dir=SHARED_RUN)
    assert plan.problems == [] and all(s.memory is None for s in plan.stages)
    assert any("someone/unknown-13b" in n and "config.json" in n for n in plan.notes)
    odd = {**cluster, "available_node_types": {**cluster["available_node_types"], "gpu_trainer": {
        **cluster["available_node_types"]["gpu_trainer"], "node_config": {"InstanceType": "x9.huge"}}}}
    plan = plan_run(preset("kto"), odd, run_dir=SHARED_RUN)
    assert plan.problems == [] and any("plan.node_gpu.gpu_trainer" in n for n in plan.notes)
    assert next(s for s in plan.stages if s.name == "sft").memory is None


def test_the_tiny_recipe_on_one_machine_has_nothing_to_refuse():
    cfgs = StageConfigs.load(REPO / "configs/tiny.yaml")
    assert infeasible(cfgs, None, "runs/tiny") == []


def test_orca_math_plan_prints_the_stages_and_totals_and_exits_by_feasibility(cluster_file, capsys):
    from orca_math.cli import main

    argv = ["plan", "--config", str(MISTRAL), "--cluster", str(cluster_file), "--out", SHARED_RUN,
            "--set", "plan.problems=200000"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for text in ("sft ", "kto-1", "practice-2", "judge-2", "A100-40GB-hours", "L40S-48GB-hours", "200,000 problems"):
        assert text in out
    assert main(argv[:-2] + ["--set", "train.scaling.num_workers=1"]) == 1
    err = capsys.readouterr().err
    assert "not runnable" in err and "sft: does not fit" in err
    assert yaml.safe_load(cluster_file.read_text())["available_node_types"]  # the file is untouched


def test_without_a_cluster_file_plan_gpu_holds_every_gpu_stage():
    plan = plan_run(preset("kto"), None, PlanConfig(gpu="A100-80GB"))
    assert plan.problems == []
    sft = next(s for s in plan.stages if s.name == "sft")
    assert sft.memory.gpu == "A100-80GB" and sft.memory.capacity == 80 * 2**30
    assert sft.gpus == 8 and sft.gpu_hours > 0 and sft.cost == 0  # no instance, no price
    assert plan_run(preset("kto"), None).stages[2].memory is None  # no GPU type given: estimates only


def test_orca_math_run_on_a_head_node_refuses_what_plan_refuses_before_starting_ray(cluster_file, tmp_path,
                                                                                     monkeypatch, capsys):
    """On a head node (`ray up` left ~/ray_bootstrap_config.yaml) a run folder outside the shared
    mount ends `orca-math run` in one line, before Ray or any stage starts."""
    import sys
    import time

    from orca_math.cli import main

    ray_was_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()  # the session's, if any
    home = tmp_path / "home"
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text(cluster_file.read_text())
    monkeypatch.setenv("HOME", str(home))
    started = time.monotonic()
    assert main(["run", "--config", str(MISTRAL), "--out", str(tmp_path / "run")]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("orca-math run failed: InfeasibleRunError: ") and "not under a path the cluster shares" in last
    assert last.endswith("fix the config, then rerun")
    assert time.monotonic() - started < 30 and not (tmp_path / "run" / "manifest.json").exists()
    assert ("ray" in sys.modules and sys.modules["ray"].is_initialized()) == ray_was_up  # no Ray was started
