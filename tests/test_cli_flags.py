"""Command-line flags come from the config classes: named shorthands and `--set SECTION.KEY=VALUE`."""

import pytest

from orca_math.cli import build_parser
from orca_math.common.config import config_from_args, load_stage_config
from orca_math.evaluate.config import EvalConfig
from orca_math.generate.config import GenerateConfig
from orca_math.judge.config import JudgeConfig
from orca_math.run.recipe import StageConfigs
from orca_math.serve.config import ServeConfig
from orca_math.teacher.config import TeacherConfig
from orca_math.train.cli import _config as train_config

# Every flag the README, docs, tests and ray_jobs use, per command: they must keep parsing.
EXISTING_FLAGS = [
    ["eval", "--model", "m", "--out", "o", "--config", "tiny", "--data", "d", "--limit", "3"],
    ["sft", "--model", "m", "--data", "d", "--out", "o", "--config", "tiny", "--max-steps", "2", "--limit", "5",
     "--num-workers", "2", "--learning-rate", "1e-4", "--save-steps", "3"],
    ["train-pref", "--algo", "kto", "--model", "m", "--data", "d", "--out", "o", "--max-steps", "2",
     "--num-workers", "1", "--learning-rate", "1e-4", "--save-steps", "3", "--limit", "4"],
    ["serve", "teacher", "--model", "m", "--model-id", "t", "--accelerator", "cpu", "--config", "tiny",
     "--host", "0.0.0.0", "--port", "8001", "--readiness-timeout", "30"],
    ["serve", "judge", "--method", "llm", "--teacher-url", "http://t/v1", "--teacher-model", "tm",
     "--readiness-timeout", "30", "--port", "8002"],
    ["tiny-model", "--out", "o", "--hidden-size", "128", "--num-layers", "2", "--num-heads", "2",
     "--vocab-size", "512", "--seed", "1"],
    ["run", "--config", "tiny", "--out", "o"],
    ["practice", "--model", "m", "--problems", "p", "--out", "o", "--limit", "4"],
    ["judge", "--samples", "s", "--problems", "p", "--out", "o", "--config", "tiny"],
    ["prefs", "--problems", "p", "--samples", "s", "--judgments", "j", "--out", "o", "--round", "2"],
    ["generate", "--seeds", "s", "--limit", "2", "--teacher-url", "http://t/v1", "--teacher-model", "tm",
     "--max-in-flight", "4", "--workers", "2", "--out", "o", "--no-progress"],
    ["solve", "--data", "d", "--limit", "2", "--teacher-url", "http://t/v1", "--out", "o"],
    ["world", "--split", "train", "--n", "4", "--seed", "3", "--out", "o.parquet"],
    ["generate", "--config", "demo", "--seeds", "s", "--out", "o", "--set", "generate.suggester_editor.rounds=1",
     "--set", "generate.suggester_editor.keep_all_rounds=true", "--set", "generate.include_seeds=false"],
    ["demo", "--out", "o", "--seed", "7"],
    ["demo", "--compare", "runs/demo", "runs/demo-seed1"],
]


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv", EXISTING_FLAGS, ids=lambda argv: argv[0] if argv[0] != "serve" else " ".join(argv[:2]))
def test_every_existing_flag_still_parses(argv):
    assert parse(*argv).func is not None


def test_a_named_flag_sets_its_field_over_the_config_file():
    args = parse("eval", "--model", "m", "--out", "o", "--config", "tiny", "--limit", "3")
    cfg = load_stage_config(EvalConfig, config_from_args(args), "eval")
    assert cfg.limit == 3 and cfg.engine.use_gpu is False  # the rest is tiny's


def test_training_flags_reach_the_algorithm_train_pref_runs():
    args = parse("train-pref", "--algo", "dpo", "--config", "tiny", "--model", "m", "--data", "d", "--out", "o",
                 "--num-workers", "2", "--learning-rate", "1e-4", "--set", "dpo.beta=0.3")
    cfg = train_config("dpo", args)
    assert cfg.scaling.num_workers == 2 and cfg.learning_rate == 1e-4 and cfg.beta == 0.3


def test_set_reaches_any_field_and_null_clears_one():
    args = parse("run", "--config", "tiny", "--out", "o", "--set", "sft.scaling.resources_per_worker.CPU=2",
                 "--set", "run.seed_limit=null", "--set", "train.save_steps=7")
    cfgs = StageConfigs.load(config_from_args(args))
    assert cfgs.sft.scaling.resources_per_worker == {"CPU": 2} and cfgs.run.seed_limit is None
    assert cfgs.sft.save_steps == cfgs.pref_train.save_steps == 7  # train: reaches every training section


def test_set_on_the_shared_teacher_reaches_the_stage_teacher():
    args = parse("generate", "--config", "tiny", "--out", "o", "--set", "teacher.max_retries=9")
    assert load_stage_config(GenerateConfig, config_from_args(args), "generate").teacher.max_retries == 9


def test_serve_judge_flags_set_three_sections():
    config = config_from_args(parse("serve", "judge", "--method", "llm", "--teacher-url", "http://t/v1",
                                    "--readiness-timeout", "5"))
    assert load_stage_config(JudgeConfig, config, "judge").method == "llm"
    assert load_stage_config(TeacherConfig, config, "teacher").base_url == "http://t/v1"
    assert load_stage_config(ServeConfig, config, "serve").judge.readiness_timeout_s == 5


def test_demo_seed_is_run_seed():
    assert StageConfigs.load(config_from_args(parse("demo", "--seed", "7"))).world.seed == 7


def test_no_flags_leave_the_config_path_as_given():
    assert config_from_args(parse("eval", "--model", "m", "--out", "o", "--config", "tiny")) == "tiny"


@pytest.mark.parametrize("setting, message", [
    ("eval.nope=1", "eval.nope is no field of EvalConfig"),
    ("sft.limit=1", "this command reads no 'sft' section"),
    ("eval.limit", "expected SECTION.KEY=VALUE"),
])
def test_set_of_an_unknown_field_or_section_is_a_usage_error(setting, message, capsys):
    with pytest.raises(SystemExit):
        parse("eval", "--model", "m", "--out", "o", "--set", setting)
    assert message in capsys.readouterr().err


def test_a_wrong_type_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        parse("eval", "--model", "m", "--out", "o", "--limit", "many")
    assert "invalid int value" in capsys.readouterr().err
