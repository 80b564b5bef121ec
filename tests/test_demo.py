"""`make demo` cut down: configs/demo.yaml at test size through the real pipeline.

World seeds -> generate (symbolic teacher on Ray Data) -> SFT -> eval -> 2 rounds of practice
(vLLM, fresh problems each round), judge (Serve), prefs, rejection-sampling fine-tuning -> eval,
and the equal-compute SFT control.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orca_math.demo import noise_points, verdict
from orca_math.manifest import RunManifest
from orca_math.pipeline.run import StageConfigs, training_sequences
from orca_math.records import read_parquet, read_table
from orca_math.schema import JUDGMENT, KTO_EXAMPLE, PROBLEM, SAMPLE
from orca_math.world.generate import find_leaks

REPO = Path(__file__).resolve().parents[1]
STAGES = ["student", "world", "seeds", "generate", "sft", "eval-M1",
          "practice-1", "judge-1", "prefs-1", "rft-1", "eval-M2",
          "practice-2", "judge-2", "prefs-2", "rft-2", "eval-M3", "sft-control", "eval-M1-sft-control"]


def small_demo_config(path: Path) -> Path:
    """configs/demo.yaml with test sizes: a few dozen problems, a handful of training steps."""
    cfg = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    cfg["world"].update(n_train=12, n_test=10)
    cfg["run"].update(practice_limit=8)
    cfg["tiny_model"].update(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256)
    for section in ("eval", "practice"):
        cfg[section]["decoding"]["max_tokens"] = 48
    cfg["generate"]["execution"]["seeds_per_part"] = 6
    cfg["sft"].update(max_steps=6, save_steps=100)
    cfg["rft"].update(max_steps=2, per_device_batch_size=4, save_steps=100)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_demo_config_loads_the_world_and_procedural_teacher():
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml")
    assert cfgs.run.world and cfgs.run.generate and cfgs.run.sft_control and cfgs.run.rounds == 2
    assert cfgs.world.n_test >= 500
    assert type(cfgs.teacher).__name__ == type(cfgs.generate.teacher).__name__ == "ProceduralTeacherConfig"
    assert cfgs.judge.method == "exact"
    assert cfgs.generate.decontam.eval_sets == []
    assert cfgs.run.preference_algo == "rft" and type(cfgs.pref_train).__name__ == "SFTTrainConfig"
    assert cfgs.run.practice_fresh and cfgs.prefs.skip_mastered
    assert cfgs.sft.bf16 and cfgs.sft.group_by_length and not cfgs.sft.scaling.use_gpu


@pytest.mark.parametrize("algo, per_example", [("dpo", 2), ("kto", 2), ("sft", 1), ("rft", 1)])
def test_control_gets_the_rounds_training_sequences(algo, per_example):
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml")
    entry = {"metrics": {"global_step": 10}}
    per_step = cfgs.pref_train.per_device_batch_size * cfgs.pref_train.gradient_accumulation_steps
    assert training_sequences(entry, cfgs.pref_train, algo) == 10 * per_step * per_example


def test_verdict_compares_last_round_with_m1_and_control():
    rows = [{"model": "M1", "accuracy": 0.5, "n": 500}, {"model": "M3", "accuracy": 0.6, "n": 500},
            {"model": "M1+SFT (control)", "accuracy": 0.62, "n": 500}]
    lines = verdict(rows)
    assert lines[0].startswith("M3 vs M1: +10.0 points")
    assert "-2.0 points" in lines[1] and "matched" in lines[1]  # 2 points is within 500 problems' noise
    rows[2]["accuracy"] = 0.7
    assert "did not beat" in verdict(rows)[1]
    rows[2]["accuracy"] = 0.5
    assert "practice beat" in verdict(rows)[1]


def test_noise_is_two_standard_errors_of_the_difference():
    a, b = {"accuracy": 0.08, "n": 500}, {"accuracy": 0.08, "n": 500}
    assert noise_points(a, b) == pytest.approx(200 * (2 * 0.08 * 0.92 / 500) ** 0.5)
    assert 3.4 < noise_points(a, b) < 3.5


@pytest.mark.slow
def test_short_demo_runs_every_stage(tmp_path, ray_local):
    from orca_math.pipeline.run import run_pipeline

    run_dir = tmp_path / "demo"
    results = run_pipeline(small_demo_config(tmp_path / "demo.yaml"), run_dir)
    manifest = RunManifest(run_dir / "manifest.json")
    assert [s for s in STAGES if (manifest.get(s) or {}).get("status") == "done"] == STAGES
    for name in STAGES:
        e = manifest.get(name)
        if "rows_in" in e:
            assert e["rows_in"] == e["rows_out"] + e["rows_quarantined"], name

    # The world: seeds and a held-out eval set that share no question.
    train = read_parquet(run_dir / "world/train.parquet", PROBLEM)
    test = read_parquet(run_dir / "world/test.parquet", PROBLEM)
    assert len(train) == 12 and len(test) == 10 and not find_leaks([p["question"] for p in train],
                                                                   [p["question"] for p in test])
    # generate: the symbolic teacher's flows added problems beyond the seeds, none a test question.
    generated = read_table(run_dir / "generate/problems", PROBLEM).to_pylist()
    flows = {p["provenance"]["flow"] for p in generated}
    assert {"seed", "ask_me_anything", "suggester_editor"} <= flows and len(generated) > len(train)
    assert not find_leaks([p["question"] for p in generated], [p["question"] for p in test])
    assert manifest.get("sft")["rows_out"] == len(generated)

    # Each round: 4 samples per practiced problem (fresh problems each round), one judgment per
    # sample; the positives RFT trains on are the teacher's solutions and correct samples only.
    by_id = {p["id"]: p for p in generated}
    practiced = []
    for k in (1, 2):
        samples = read_parquet(run_dir / f"round{k}/practice/samples.parquet", SAMPLE)
        judgments = read_parquet(run_dir / f"round{k}/judge/judgments.parquet", JUDGMENT)
        assert len(samples) == 8 * 4
        assert sorted(j["sample_id"] for j in judgments) == sorted(s["sample_id"] for s in samples)
        practiced.append({s["problem_id"] for s in samples})
        right = {(s["problem_id"], s["text"]) for s in samples
                 if next(j for j in judgments if j["sample_id"] == s["sample_id"])["correct"]}
        positives = read_parquet(run_dir / f"round{k}/prefs/positives.parquet", KTO_EXAMPLE)
        assert positives and all(e["label"] for e in positives)
        for e in positives:
            assert ((e["source"] == "teacher" and e["completion"] == by_id[e["problem_id"]]["reference_solution"])
                    or (e["source"] == "student" and (e["problem_id"], e["completion"]) in right))
        assert manifest.get(f"rft-{k}")["metrics"]["global_step"] == 2
        assert (run_dir / f"models/M{k + 1}/config.json").exists()
    assert len(practiced[0]) == len(practiced[1]) == 8 and not practiced[0] & practiced[1]

    # The control trained as many sequences as both rounds (2 steps x 4 examples each), with the
    # rounds' trainer settings.
    control = manifest.get("sft-control")
    assert control["control_sequences"] == 2 * 2 * 4
    assert control["metrics"]["global_step"] == control["config"]["max_steps"] == 16 // 4
    assert control["config"]["learning_rate"] == manifest.get("rft-1")["config"]["learning_rate"]

    # Results: every model evaluated on the same held-out world problems.
    assert [r["model"] for r in results] == ["M1", "M2", "M3", "M1+SFT (control)"]
    assert all(r["n"] == 10 and 0 <= r["accuracy"] <= 1 for r in results)
    assert json.loads((run_dir / "results.json").read_text()) == results
    md = (run_dir / "results.md").read_text()
    assert "world-test pass@1" in md and "M1+SFT (control)" in md
    assert (run_dir / "results.png").stat().st_size > 0
    for label in ("M1", "M2", "M3", "M1-sft-control"):
        assert manifest.get(f"eval-{label}")["rows_in"] == 10


def test_dpo_loss_list_is_rpo_and_weights_must_match():
    from pydantic import ValidationError

    from orca_math.train.config import DPOTrainConfig
    from orca_math.train.trainers import trl_args

    cfg = DPOTrainConfig(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5], bf16=False,
                         gradient_checkpointing=False, scaling={"use_gpu": False})
    args = trl_args("dpo", cfg, "/tmp/unused")
    assert args.loss_type == ["sigmoid", "sft"] and args.loss_weights == [1.0, 0.5]
    assert trl_args("dpo", cfg.model_copy(update={"loss_type": "ipo", "loss_weights": None}), "/tmp/u").loss_type == ["ipo"]
    with pytest.raises(ValidationError, match="loss_weights has 1 entries for 2"):
        DPOTrainConfig(loss_type=["sigmoid", "sft"], loss_weights=[1.0])
    with pytest.raises(ValidationError):
        DPOTrainConfig(loss_type=["sigmoid", "not-a-loss"])


def test_kept_world_seeds_count_as_flow_seed():
    # The generate pipeline finds a removed duplicate's flow from its row: a kept seed must say "seed".
    from orca_math.world.generate import WorldConfig, generate_problems
    from orca_math.world.teacher import FlowSettings, ProceduralTeacherConfig, expand_seed

    seed = generate_problems("train", 1, WorldConfig(n_train=1, n_test=1)).rows[0]
    out = expand_seed(seed, ProceduralTeacherConfig(), FlowSettings(include_seeds=True))
    kept_seed = [p for p in out.problems if p["id"] == seed["id"]]
    assert len(kept_seed) == 1 and kept_seed[0]["provenance"]["flow"] == "seed"
