"""Stage configs load from YAML sections and fail with the file, key and reason."""

import textwrap
from pathlib import Path

import pytest
import yaml

from orca_math.common.config import CONFIG_DIR, ConfigError, load_stage_config, load_yaml
from orca_math.common.sampling.config import VLLMEngineConfig
from orca_math.evaluate.config import EvalConfig
from orca_math.teacher.config import ProceduralTeacherConfig, load_teacher_config
from orca_math.tiny_model.config import TinyModelConfig
from orca_math.train.config import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig


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


def test_identity_changes_with_values():
    assert EvalConfig().identity() == EvalConfig().identity() != EvalConfig(limit=3).identity()


def test_tensor_parallel_needs_gpu():
    with pytest.raises(ValueError, match="tensor_parallel_size > 1 needs use_gpu"):
        VLLMEngineConfig(use_gpu=False, tensor_parallel_size=2)


def test_tiny_model_head_dim_must_fit_vllm_cpu():
    with pytest.raises(ValueError, match="head dim 16"):
        TinyModelConfig(hidden_size=64, num_heads=4)


SHIPPED_PRESETS = ["tiny", "demo", "orca_math_mistral7b"]


def setting_lines(path) -> int:
    """Lines that set something: not blank, not a comment."""
    return sum(1 for line in Path(path).read_text().splitlines() if line.strip() and not line.lstrip().startswith("#"))


@pytest.mark.parametrize("preset", SHIPPED_PRESETS)
def test_shipped_presets_extend_a_base_and_hold_only_their_differences(preset):
    path = CONFIG_DIR / f"{preset}.yaml"
    assert yaml.safe_load(path.read_text())["extends"] == "default"
    assert setting_lines(path) <= 70


def write(path, text: str):
    path.write_text(textwrap.dedent(text))
    return path


def test_a_child_overrides_its_base_and_deep_merges_mappings(tmp_path):
    write(tmp_path / "base.yaml", """
        eval:
          data: gsm8k-test
          limit: 10
          engine: {use_gpu: false, batch_size: 8, resources: {sampler: 1}}
          decoding: {max_tokens: 64}
    """)
    child = write(tmp_path / "child.yaml", """
        extends: base.yaml
        eval:
          limit: 3
          engine: {batch_size: 16, resources: {trainer: 1}}
    """)
    cfg = load_stage_config(EvalConfig, child, "eval")
    assert cfg.limit == 3 and cfg.data == "gsm8k-test" and cfg.decoding.max_tokens == 64
    assert cfg.engine.use_gpu is False and cfg.engine.batch_size == 16
    assert cfg.engine.resources == {"sampler": 1, "trainer": 1}  # mappings merge all the way down
    assert "extends" not in load_yaml(child)


def test_a_list_or_null_in_the_child_replaces_the_base_value(tmp_path):
    write(tmp_path / "base.yaml", "world: {kinds: [add, sub], seed: 3}\n")
    child = write(tmp_path / "child.yaml", "extends: base\nworld: {kinds: [mul], seed: null}\n")
    assert load_yaml(child)["world"] == {"kinds": ["mul"], "seed": None}


def test_extends_chains_and_finds_presets_by_name(tmp_path):
    write(tmp_path / "mid.yaml", "extends: tiny\neval: {limit: 7}\n")
    leaf = write(tmp_path / "leaf.yaml", "extends: mid\neval: {decoding: {max_tokens: 9}}\n")
    cfg = load_stage_config(EvalConfig, leaf, "eval")
    tiny = load_stage_config(EvalConfig, "tiny", "eval")
    assert cfg.limit == 7 and cfg.decoding.max_tokens == 9
    assert cfg.engine == tiny.engine and cfg.decoding.temperature == tiny.decoding.temperature


def test_an_extends_cycle_is_a_config_error(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle") as e:
        load_stage_config(EvalConfig, tmp_path / "a.yaml", "eval")
    assert e.value.key == "extends"


def test_a_missing_base_names_the_file_that_extends_it(tmp_path):
    child = write(tmp_path / "child.yaml", "extends: no-such-base\n")
    with pytest.raises(ConfigError, match="no such base config 'no-such-base'") as e:
        load_yaml(child)
    assert e.value.file == str(child) and e.value.key == "extends"


def test_train_section_is_shared_by_every_training_section_and_a_section_wins(tmp_path):
    f = write(tmp_path / "c.yaml", """
        train: {learning_rate: 0.01, save_steps: 5, scaling: {num_workers: 2}}
        sft: {learning_rate: 0.1}
        kto: {scaling: {max_failures: 0}}
    """)
    sft, dpo = load_stage_config(SFTTrainConfig, f, "sft"), load_stage_config(DPOTrainConfig, f, "dpo")
    kto = load_stage_config(KTOTrainConfig, f, "kto")
    assert (sft.learning_rate, dpo.learning_rate, kto.learning_rate) == (0.1, 0.01, 0.01)
    assert sft.save_steps == dpo.save_steps == kto.save_steps == 5
    assert kto.scaling.num_workers == 2 and kto.scaling.max_failures == 0
    assert "train" not in load_yaml(f)


def test_a_childs_train_section_wins_over_its_bases_training_sections(tmp_path):
    write(tmp_path / "base.yaml", "sft: {learning_rate: 0.1, save_steps: 9}\n")
    child = write(tmp_path / "child.yaml", "extends: base\ntrain: {learning_rate: 0.5}\n")
    sft = load_stage_config(SFTTrainConfig, child, "sft")
    assert sft.learning_rate == 0.5 and sft.save_steps == 9


def test_a_section_of_another_kind_replaces_the_bases(tmp_path):
    child = write(tmp_path / "child.yaml", "extends: tiny\nteacher: {kind: procedural, max_value: 40}\n")
    teacher = load_teacher_config(child)
    assert isinstance(teacher, ProceduralTeacherConfig) and teacher.max_value == 40


def test_the_shared_teacher_section_merges_under_generate_and_solve_like_train_kind_included(tmp_path):
    from orca_math.generate.config import GenerateConfig, SolveStageConfig
    from orca_math.teacher.config import TeacherConfig

    (tmp_path / "base.yaml").write_text("teacher: {base_url: 'http://a/v1', model: m1}\n"
                                        "generate: {teacher: {max_tokens: 99}}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nteacher: {kind: procedural, seed: 3}\n")
    base = load_stage_config(GenerateConfig, tmp_path / "base.yaml", "generate").teacher
    assert base == TeacherConfig(base_url="http://a/v1", model="m1", max_tokens=99)  # the section's key wins
    assert load_stage_config(SolveStageConfig, tmp_path / "base.yaml", "solve").teacher.max_tokens == 1024
    # Another kind replaces what is under it, in the section too: the child's word wins.
    for cls, section in ((GenerateConfig, "generate"), (SolveStageConfig, "solve")):
        assert load_stage_config(cls, tmp_path / "child.yaml", section).teacher == ProceduralTeacherConfig(seed=3)
