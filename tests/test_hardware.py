"""`auto` settings follow the machine: precision, attention, vLLM dtype, devices (faked machines)."""

import logging
import os

import pytest

from orca_math.common.capacity import Capacity, ClusterTooSmallError, check_feasible
from orca_math.common.hardware import (
    Machine,
    choose_attention,
    choose_precision,
    choose_vllm_dtype,
    cpuinfo_flags,
    fp32_kernel_pins,
    native_bf16_flag,
    resolve_use_gpu,
    this_machine,
)
from orca_math.common.sampling.config import VLLMEngineConfig
from orca_math.teacher.serve_teacher import TeacherServeConfig
from orca_math.train.config import SFTTrainConfig, TrainScalingConfig

AVX512_BF16 = Machine(cpu_name="AMD EPYC 9R14", cpu_bf16_flag="avx512_bf16")
AVX2_ONLY = Machine(cpu_name="AMD EPYC 7R13", cpu_bf16_flag=None)
A100 = Machine(cpu_name="x", cpu_bf16_flag=None, cuda=True, cuda_bf16=True, gpu_name="A100")
V100 = Machine(cpu_name="x", cpu_bf16_flag=None, cuda=True, cuda_bf16=False, gpu_name="V100")
CPU_ONLY_CLUSTER = Capacity.one_node({"CPU": 2.0, "memory": 1e9})
GPU_CLUSTER = Capacity.one_node({"CPU": 16.0, "GPU": 2.0})


def test_auto_trains_bf16_on_a_cpu_with_native_bf16_and_says_why():
    p = choose_precision("auto", "auto", on_gpu=False, machine=AVX512_BF16)
    assert (p.bf16, p.fp16) == (True, False)
    assert "avx512_bf16" in p.reason and "AMD EPYC 9R14" in p.reason
    assert p.record(AVX512_BF16)["machine"]["cpu_name"] == "AMD EPYC 9R14"


def test_auto_trains_fp32_on_an_avx2_only_cpu():
    p = choose_precision("auto", "auto", on_gpu=False, machine=AVX2_ONLY)
    assert (p.bf16, p.fp16) == (False, False)
    assert "no native bf16" in p.reason


def test_explicit_bf16_on_a_cpu_without_native_bf16_warns_of_the_slowdown(caplog):
    with caplog.at_level(logging.WARNING, logger="orca_math.common.hardware"):
        p = choose_precision(True, "auto", on_gpu=False, machine=AVX2_ONLY)
    assert p.bf16
    assert "20x slower" in caplog.text and "AMD EPYC 7R13" in caplog.text


def test_explicit_false_stands_even_where_bf16_is_native():
    assert not choose_precision(False, False, on_gpu=False, machine=AVX512_BF16).bf16


def test_auto_on_gpus_is_bf16_where_supported_else_fp16():
    assert (choose_precision("auto", "auto", True, A100).bf16, choose_precision("auto", "auto", True, A100).fp16) == (True, False)
    v100 = choose_precision("auto", "auto", True, V100)
    assert (v100.bf16, v100.fp16) == (False, True)


def test_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp16 mixed precision needs a GPU"):
        choose_precision("auto", True, on_gpu=False, machine=AVX512_BF16)


def test_attention_follows_precision_unless_set():
    bf16 = choose_precision("auto", "auto", False, AVX512_BF16)
    fp32 = choose_precision("auto", "auto", False, AVX2_ONLY)
    assert choose_attention(None, bf16, on_gpu=False) == "eager"
    assert choose_attention(None, fp32, on_gpu=False) is None  # transformers' default, sdpa
    assert choose_attention(None, choose_precision("auto", "auto", True, A100), on_gpu=True) is None
    assert choose_attention("sdpa", bf16, on_gpu=False) == "sdpa"


def test_vllm_dtype_follows_the_machine():
    assert choose_vllm_dtype("auto", False, AVX512_BF16) == "bfloat16"
    assert choose_vllm_dtype("auto", False, AVX2_ONLY) == "float32"
    assert choose_vllm_dtype("auto", True, A100) == "bfloat16"
    assert choose_vllm_dtype("auto", True, V100) == "float16"
    assert choose_vllm_dtype("float32", False, AVX512_BF16) == "float32"


def test_use_gpu_auto_follows_the_cluster():
    assert resolve_use_gpu("auto", CPU_ONLY_CLUSTER) is False
    assert resolve_use_gpu("auto", GPU_CLUSTER) is True
    assert resolve_use_gpu(False, GPU_CLUSTER) is False


def test_a_gpu_request_on_a_cpu_cluster_fails_at_once_naming_the_setting():
    with pytest.raises(ClusterTooSmallError, match=r"scaling.use_gpu.*") as e:
        check_feasible("1 training worker(s)", {"CPU": 1, "GPU": 1}, 1, "scaling.use_gpu", CPU_ONLY_CLUSTER)
    assert "GPU: needs 1, cluster can have 0" in str(e.value)
    check_feasible("2 workers", {"CPU": 1}, 2, "scaling.num_workers", CPU_ONLY_CLUSTER)  # fits: no error


def test_engine_on_a_cpu_cluster_goes_to_cpu_and_a_forced_gpu_engine_fails_fast():
    assert VLLMEngineConfig().on_cluster(CPU_ONLY_CLUSTER).use_gpu is False
    assert VLLMEngineConfig().on_cluster(GPU_CLUSTER).use_gpu is True
    with pytest.raises(ClusterTooSmallError, match="engine.use_gpu"):
        VLLMEngineConfig(use_gpu=True).on_cluster(CPU_ONLY_CLUSTER)
    with pytest.raises(ClusterTooSmallError, match="engine.concurrency"):
        VLLMEngineConfig(concurrency=3, num_cpus_per_engine=1).on_cluster(CPU_ONLY_CLUSTER)


def test_teacher_accelerator_auto_is_cpu_without_gpus_and_gpu_with_them():
    assert TeacherServeConfig().on_cluster(CPU_ONLY_CLUSTER).accelerator == "cpu"
    assert TeacherServeConfig().on_cluster(GPU_CLUSTER).accelerator == "gpu"
    with pytest.raises(ClusterTooSmallError, match="--accelerator cpu"):
        TeacherServeConfig(accelerator="gpu").on_cluster(CPU_ONLY_CLUSTER)


def test_training_defaults_are_auto_and_validate_without_a_cluster():
    cfg = SFTTrainConfig()
    assert cfg.bf16 == "auto" and cfg.fp16 == "auto" and cfg.scaling.use_gpu == "auto"
    with pytest.raises(ValueError, match="still auto"):
        TrainScalingConfig().ray_scaling_config()


def test_worker_resolution_records_the_choice(monkeypatch):
    from orca_math.train import trainers

    monkeypatch.setattr(trainers, "this_machine", lambda: AVX2_ONLY)
    cfg, record = trainers.resolve_on_worker(SFTTrainConfig(scaling={"use_gpu": False}))
    assert (cfg.bf16, cfg.fp16, cfg.attn_implementation) == (False, False, None)
    assert record["bf16"] is False and record["machine"]["cpu_name"] == "AMD EPYC 7R13"
    monkeypatch.setattr(trainers, "this_machine", lambda: AVX512_BF16)
    cfg, record = trainers.resolve_on_worker(SFTTrainConfig(scaling={"use_gpu": False}))
    assert (cfg.bf16, cfg.attn_implementation) == (True, "eager") and "avx512_bf16" in record["reason"]


AVX2_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
AUTO_TRAINING = [("auto", "auto"), ("auto", "auto")]


@pytest.mark.parametrize("flags, precisions, dtypes, arch, pinned", [
    # fp32 everywhere: an AVX-512 CPU without native bf16 and an AVX2-only one take the same kernels
    ({"avx2", "avx512f"}, AUTO_TRAINING, ["auto", "auto"], "x86_64", True),
    ({"avx2", "fma"}, AUTO_TRAINING, ["auto", "auto"], "x86_64", True),
    ({"avx2", "avx512f", "amx_bf16"}, [(False, "auto"), (False, "auto")], ["float32", "float32"], "x86_64", True),
    # anything in bf16 keeps the CPU's own kernels (AVX2 ones would emulate bf16)
    ({"avx2", "avx512f", "amx_bf16"}, AUTO_TRAINING, ["auto", "auto"], "x86_64", False),
    ({"avx2", "avx512_bf16"}, [(False, "auto"), (False, "auto")], ["auto", "float32"], "x86_64", False),
    ({"avx2", "avx512_bf16"}, [(False, "auto"), ("auto", "auto")], ["float32", "float32"], "x86_64", False),
    ({"avx2"}, [(True, "auto"), (False, "auto")], ["float32", "float32"], "x86_64", False),
    # no AVX2 to pin to, or not x86
    ({"sse4_2"}, AUTO_TRAINING, ["auto", "auto"], "x86_64", False),
    ({"asimd"}, AUTO_TRAINING, ["auto", "auto"], "aarch64", False),
])
def test_a_run_all_in_fp32_pins_avx2_kernels_and_any_bf16_keeps_the_cpus_own(flags, precisions, dtypes, arch, pinned):
    assert fp32_kernel_pins(precisions, dtypes, frozenset(flags), arch) == (AVX2_PINS if pinned else {})


def test_cpuinfo_flags_tell_native_bf16_as_torch_does():
    # What the demo decides before importing torch must be what training decides after.
    if not cpuinfo_flags():
        pytest.skip("no /proc/cpuinfo flags here")
    assert (native_bf16_flag(cpuinfo_flags()) is not None) == (this_machine().cpu_bf16_flag is not None)


def test_the_record_names_the_kernels_torch_runs_even_when_lowered_below_the_cpu():
    # ATEN_CPU_CAPABILITY lowers torch's kernels below what the CPU offers (how an AVX2-only CPU was
    # timed on an AVX-512 one): the manifest must show it, beside the CPU's own flags.
    import json
    import subprocess
    import sys

    show = "import json; from orca_math.common.hardware import this_machine; print(json.dumps(this_machine().record()))"
    here = json.loads(subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, check=True).stdout)
    lowered = json.loads(subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, check=True,
                                        env={**os.environ, "ATEN_CPU_CAPABILITY": "default"}).stdout)
    assert here["cpu_kernels"] in ("AVX512", "AVX2", "Z VECTOR", "VSX", "SVE256", "NO AVX", "DEFAULT")
    assert lowered.pop("cpu_kernels") == "DEFAULT"
    here.pop("cpu_kernels")
    assert lowered == here  # the CPU and its bf16 flags are what they are


def test_on_a_real_cpu_only_ray_cluster_auto_is_cpu_and_a_gpu_worker_fails_in_seconds(ray_local, tiny_model, tmp_path):
    import time

    from orca_math.common.capacity import cluster_capacity
    from orca_math.train.ray_train import fit_on_ray

    assert cluster_capacity().totals().get("GPU", 0) == 0 and resolve_use_gpu("auto") is False
    cfg = SFTTrainConfig(max_steps=1, gradient_checkpointing=False, scaling={"use_gpu": True})
    started = time.perf_counter()
    with pytest.raises(ClusterTooSmallError, match="scaling.use_gpu"):
        fit_on_ray("sft", str(tiny_model), {"prompt": ["Q"], "completion": ["#### 1"]}, cfg, tmp_path / "out")
    assert time.perf_counter() - started < 10
