"""Stage configs load from YAML sections and fail with the file, key and reason."""

import pytest

from orca_math.config import ConfigError, load_stage_config
from orca_math.evaluate.stage import EvalConfig
from orca_math.sampling.config import VLLMEngineConfig
from orca_math.tiny_model import TinyModelConfig


def test_tiny_preset_is_cpu_and_greedy():
    cfg = load_stage_config(EvalConfig, "configs/tiny.yaml", "eval")
    assert cfg.engine.use_gpu is False and cfg.engine.on_this_machine().dtype == "float32"
    assert cfg.decoding.temperature == 0.0 and cfg.decoding.n == 1


def test_preset_name_resolves_from_configs_dir():
    assert load_stage_config(EvalConfig, "tiny", "eval") == load_stage_config(EvalConfig, "configs/tiny.yaml", "eval")


def test_defaults_are_the_paper_protocol():
    cfg = EvalConfig()
    assert cfg.prompt_template == "USER:\n{question}\n\nASSISTANT:\n"
    assert cfg.data == "gsm8k-test" and cfg.limit is None
    # Devices and dtype follow the machine (tests/test_hardware.py): GPUs where the cluster has them.
    assert cfg.engine.use_gpu == "auto" and cfg.engine.dtype == "auto"
    assert load_stage_config(EvalConfig, "configs/default.yaml", "eval") == cfg


def test_unknown_key_names_file_and_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("eval:\n  engine:\n    modle: x\n")
    with pytest.raises(ConfigError) as e:
        load_stage_config(EvalConfig, f, "eval")
    assert e.value.file == str(f) and e.value.key == "eval.engine.modle"
    assert "Extra inputs" in e.value.reason


def test_bad_value_names_key_and_reason(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("eval:\n  limit: -3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: eval.limit: .*greater than or equal to 1"):
        load_stage_config(EvalConfig, f, "eval")


def test_invalid_yaml_names_the_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("eval: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_stage_config(EvalConfig, f, "eval")


def test_missing_file_is_a_config_error():
    with pytest.raises(ConfigError, match="no such config file"):
        load_stage_config(EvalConfig, "does-not-exist.yaml", "eval")


def test_overrides_win_and_none_is_ignored():
    cfg = load_stage_config(EvalConfig, "tiny", "eval", {"limit": 5, "data": None, "engine.batch_size": 7})
    assert cfg.limit == 5 and cfg.data == "gsm8k-test" and cfg.engine.batch_size == 7


def test_config_hash_changes_with_values():
    assert EvalConfig().config_hash() == EvalConfig().config_hash() != EvalConfig(limit=3).config_hash()


def test_tensor_parallel_needs_gpu():
    with pytest.raises(ValueError, match="tensor_parallel_size > 1 needs use_gpu"):
        VLLMEngineConfig(use_gpu=False, tensor_parallel_size=2)


def test_tiny_model_head_dim_must_fit_vllm_cpu():
    with pytest.raises(ValueError, match="head dim 16"):
        TinyModelConfig(hidden_size=64, num_heads=4)
