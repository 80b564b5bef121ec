"""`make demo` cut down: configs/demo.yaml at test size through the real pipeline.

World seeds -> generate (symbolic teacher on Ray Data) -> SFT -> eval -> 2 rounds of practice
(vLLM, fresh problems each round), judge (Serve), prefs, rejection-sampling fine-tuning -> eval,
and the equal-compute SFT control.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import yaml

from orca_math.common.config import REPO_ROOT, load_yaml
from orca_math.common.hardware import cpuinfo_flags
from orca_math.common.manifest import RunManifest
from orca_math.common.records import read_parquet, read_table
from orca_math.common.schema import JUDGMENT, KTO_EXAMPLE, PROBLEM, SAMPLE
from orca_math.run.config import StageConfigs
from orca_math.run.console import Progress, stage_counts
from orca_math.run.recipe import planned_stages, recipe
from orca_math.run.report import compare_runs, mcnemar_one_sided, noise_points, sign_flip_one_sided, verdict
from orca_math.train.stage import training_sequences
from orca_math.world.core import find_leaks, program_from_row
from orca_math.world.steps import arithmetic_steps

REPO = Path(__file__).resolve().parents[1]
STAGES = ["student", "world", "seeds", "generate", "sft", "eval-M1",
          "practice-1", "judge-1", "prefs-1", "rft-1", "eval-M2",
          "practice-2", "judge-2", "prefs-2", "rft-2", "eval-M3", "sft-control", "eval-M1-sft-control"]


def small_demo_config(path: Path) -> Path:
    """configs/demo.yaml with test sizes: a few dozen problems, a handful of training steps."""
    cfg = load_yaml(REPO / "configs/demo.yaml")  # extends resolved: every section in full
    cfg["world"].update(n_train=12, n_test=10)
    cfg["run"].update(practice_limit=8)
    cfg["tiny_model"].update(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256)
    for section in ("eval", "practice"):
        cfg[section]["decoding"]["max_tokens"] = 48
        cfg[section]["engine"]["concurrency"] = 1  # one engine start, not two, for a few dozen problems
    cfg["generate"]["execution"]["seeds_per_part"] = 6
    cfg["sft"].update(max_steps=6, save_steps=100)
    cfg["rft"].update(max_steps=2, per_device_batch_size=4, save_steps=100)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_an_fp32_demo_puts_torch_on_avx2_kernels_before_torch_starts(tmp_path):
    # On an x86 CPU with AVX2, a run all in fp32 reaches torch on AVX2 kernels; a value already in
    # the environment stands. Where the CPU has no AVX2 (or is not x86), nothing is pinned.
    import os
    import subprocess
    import sys

    cfg = load_yaml(REPO / "configs/demo.yaml")
    for section in ("sft", "rft"):
        cfg[section]["bf16"] = False
    for section in ("eval", "practice"):
        cfg[section]["engine"]["dtype"] = "float32"
    (tmp_path / "fp32.yaml").write_text(yaml.safe_dump(cfg))
    show = ("import json; from orca_math.demo import pin_fp32_kernels; from orca_math.run.config import "
            f"StageConfigs; pins = pin_fp32_kernels(StageConfigs.load({str(tmp_path / 'fp32.yaml')!r})); "
            "import torch; print(json.dumps([pins, torch.backends.cpu.get_cpu_capability()]))")
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}

    def run(**extra):
        out = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, check=True,
                             env={**env, **extra}).stdout
        return json.loads(out.strip().splitlines()[-1])

    pins, kernels = run()
    if not pins:
        assert platform.machine() not in ("x86_64", "AMD64") or "avx2" not in cpuinfo_flags()
        return
    assert pins == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"} and kernels == "AVX2"
    assert run(ATEN_CPU_CAPABILITY="default")[1] == "DEFAULT"


def test_demo_config_loads_the_world_and_procedural_teacher():
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml")
    assert cfgs.run.world and cfgs.run.generate and cfgs.run.sft_control and cfgs.run.rounds == 2
    assert cfgs.world.n_test >= 500
    assert type(cfgs.teacher).__name__ == type(cfgs.generate.teacher).__name__ == "ProceduralTeacherConfig"
    assert cfgs.judge.method == "exact"
    assert cfgs.generate.decontam.eval_sets == []
    assert cfgs.run.preference_algo == "rft" and type(cfgs.pref_train).__name__ == "SFTTrainConfig"
    # The rounds train on the problems not every sample got right, a right answer through a false step is
    # no positive (docs/demo-results.md).
    assert cfgs.run.practice_fresh and cfgs.prefs.skip_mastered and cfgs.prefs.check_calculations
    # Precision, attention, devices and vLLM's dtype follow the machine (tests/test_hardware.py).
    for cfg in (cfgs.sft, cfgs.pref_train):
        assert cfg.bf16 == cfg.fp16 == cfg.scaling.use_gpu == "auto" and cfg.attn_implementation is None
    assert cfgs.eval.engine.dtype == cfgs.practice.engine.dtype == cfgs.eval.engine.use_gpu == "auto"
    assert cfgs.sft.group_by_length
    # The model's own loss over full logits (1.4x TRL's chunked head in bf16, as fast in fp32; same loss: test_train.py).
    assert cfgs.sft.fused_lm_head is False and cfgs.pref_train.fused_lm_head is False
    assert cfgs.tiny_model.hidden_size // cfgs.tiny_model.num_heads in (32, 64, 128)  # vLLM's CPU head sizes


def test_planned_stages_are_the_demo_stages_in_order():
    assert planned_stages(StageConfigs.load(REPO / "configs/demo.yaml")) == STAGES


def test_training_in_the_driver_frees_only_gpu_engines_and_keeps_the_judge_up():
    frees = {s.name: s.frees for s in recipe(StageConfigs.load(REPO / "configs/demo.yaml"), Path("RUN"))}
    assert frees["sft"] == frees["rft-1"] == frees["rft-2"] == frees["sft-control"] == ("gpu_engines",)
    assert frees["judge-1"] == ()  # the exact judge calls no teacher
    # A round of one partition is one zero-CPU task: the engine hosts serve the next eval unrestarted.
    # A round shuffled by tasks that ask for CPUs frees them first.
    assert frees["prefs-1"] == ()
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml")
    cfgs.prefs = cfgs.prefs.model_copy(update={"samples_per_partition": 1000})
    assert {s.name: s.frees for s in recipe(cfgs, Path("RUN"))}["prefs-1"] == ("engines",)


@pytest.mark.parametrize("offset", [0, 500])
def test_each_round_practices_the_next_problems_from_the_configured_offset(offset):
    # generate writes the seeds first: from offset 0 the rounds practice the world's own problems (the
    # test's kind), not the harder Suggester+Editor rewrites at the end (docs/demo-results.md).
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml")
    cfgs.practice = cfgs.practice.model_copy(update={"offset": offset})
    practiced = [(s.config.offset, s.config.limit) for s in recipe(cfgs, Path("RUN")) if s.name.startswith("practice-")]
    assert practiced == [(offset, 2500), (offset + 2500, 2500)]


def test_the_stricter_control_reads_the_problems_the_rounds_practiced():
    stages = {s.name: s for s in recipe(StageConfigs.load(REPO / "configs/demo.yaml"), Path("RUN"))}
    assert stages["sft-control"].inputs["data"] == "RUN/generate/problems"
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml", {"sft_control_data": "practiced"})
    stages = {s.name: s for s in recipe(cfgs, Path("RUN"))}
    assert stages["sft-control"].inputs["data"] == "RUN/round1/practice/problems.parquet,RUN/round2/practice/problems.parquet"
    # Rounds that are not fresh all practice round 1's problems: the control reads them once.
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml", {"sft_control_data": "practiced", "practice_fresh": False})
    stages = {s.name: s for s in recipe(cfgs, Path("RUN"))}
    assert stages["sft-control"].inputs["data"] == "RUN/round1/practice/problems.parquet"


def test_one_seed_reseeds_world_teacher_init_data_order_and_sampling():
    base = StageConfigs.load(REPO / "configs/demo.yaml")
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml", {"seed": 7})
    seeded = (cfgs.world, cfgs.teacher, cfgs.generate.teacher, cfgs.tiny_model, cfgs.sft, cfgs.pref_train,
              cfgs.prefs, cfgs.practice.decoding)
    assert all(c.seed == 7 for c in seeded)
    assert cfgs.world.model_copy(update={"seed": base.world.seed}) == base.world  # nothing else moved


@pytest.mark.parametrize("algo, per_example", [("dpo", 2), ("kto", 2), ("sft", 1), ("rft", 1)])
def test_control_gets_the_rounds_training_sequences(algo, per_example):
    cfgs = StageConfigs.load(REPO / "configs/demo.yaml")
    entry = {"metrics": {"global_step": 10}}
    per_step = cfgs.pref_train.per_device_batch_size * cfgs.pref_train.gradient_accumulation_steps
    assert training_sequences(entry, cfgs.pref_train, algo) == 10 * per_step * per_example


def _eval_results(path: Path, correct: list[bool]) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"problem_id": [f"p{i}" for i in range(len(correct))], "correct": correct}), path)
    return str(path)


def test_verdict_is_mcnemar_on_the_per_problem_verdicts(tmp_path):
    # 500 problems: M3 alone solves 30, the control alone 12, both 200 -> +3.6 points, p ~ 0.004:
    # significant paired, though within the unpaired two-standard-error band.
    m3 = [True] * 230 + [False] * 270
    control = [True] * 200 + [False] * 30 + [True] * 12 + [False] * 258
    rows = [{"model": "M1", "accuracy": 0.4, "n": 500},
            {"model": "M3", "accuracy": sum(m3) / 500, "n": 500, "results": _eval_results(tmp_path / "m3", m3)},
            {"model": "M1+SFT (control)", "accuracy": sum(control) / 500, "n": 500,
             "results": _eval_results(tmp_path / "c", control)}]
    lines = verdict(rows)
    assert lines[0].startswith("M3 vs M1: +6.0 points")
    assert "practice beat plain SFT" in lines[1] and "p = 0.00" in lines[1]
    assert "30 problems only M3 solved, 12 only the control, of 500" in lines[1]
    assert "unpaired" in lines[2] and "matched" in lines[2]
    # Swapped arms: the same evidence says the control is ahead, so practice did not beat it.
    rows[1]["results"], rows[2]["results"] = rows[2]["results"], rows[1]["results"]
    assert "practice did not beat plain SFT" in verdict(rows)[1]


def _finished_run(run_dir: Path, m1: float, m3: list[bool], control: list[bool],
                  control_label: str = "M1+SFT (control)") -> Path:
    run_dir.mkdir(parents=True)
    rows = [{"model": "M1", "accuracy": m1, "n": len(m3)}, {"model": "M2", "accuracy": m1, "n": len(m3)}]
    for label, correct in (("M3", m3), (control_label, control)):
        rows.append({"model": label, "accuracy": sum(correct) / len(correct), "n": len(correct),
                     "results": _eval_results(run_dir / f"{len(rows)}.parquet", correct)})
    (run_dir / "results.json").write_text(json.dumps(rows))
    return run_dir


def test_compare_pools_the_runs_discordant_problems(tmp_path, capsys):
    # Three runs of 100 problems where M3 alone solves w problems and the control alone l others:
    # 7 / 2, 6 / 2, 7 / 3. No run alone is significant at 5%; together, 20 / 7 is.
    runs = [_finished_run(tmp_path / f"seed{i}", 0.40, [True] * (50 + w) + [False] * (50 - w),
                          [True] * 50 + [False] * w + [True] * l + [False] * (50 - w - l))
            for i, (w, l) in enumerate([(7, 2), (6, 2), (7, 3)])]
    lines = compare_runs(runs)
    assert lines[0] == ("| run | M1 | M3 | M1+SFT (control) | M3 - M1 | M3 - control | only M3 / only control | p |")
    assert [line.split(" | ")[-2:] for line in lines[2:5]] == [
        ["7 / 2", f"{mcnemar_one_sided(7, 2):.2g} |"], ["6 / 2", f"{mcnemar_one_sided(6, 2):.2g} |"],
        ["7 / 3", f"{mcnemar_one_sided(7, 3):.2g} |"]]
    assert min(mcnemar_one_sided(w, l) for w, l in [(7, 2), (6, 2), (7, 3)]) > 0.05
    assert lines[-2].startswith("pooled: in these runs practice beat plain SFT")
    assert f"p = {mcnemar_one_sided(20, 7):.3g}; 20 problems only M3 solved, 7 only the control" in lines[-2]
    assert mcnemar_one_sided(20, 7) < 0.05
    assert lines[-3].startswith("3 runs: M3 - M1 ")
    # Three runs, each ahead: as likely as 1 in 8 under the null, seed to seed.
    assert lines[-1].startswith("across runs: practice did not beat plain SFT from seed to seed")
    assert "p = 0.125; the smallest 3 runs can give is 0.12" in lines[-1]
    # The command prints the same, runs nothing and writes nothing.
    from orca_math.cli import main

    assert main(["demo", "--compare", *map(str, runs)]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(["demo", "--compare", str(tmp_path / "nowhere")]) == 2
    assert "nowhere/results.json: missing" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0", "seed1", "seed2"]
    # A run whose control is another kind is not pooled with these, and the error names it.
    odd = _finished_run(tmp_path / "odd", 0.4, [True] * 10, [False] * 10, "M1+SFT on practiced problems (control)")
    with pytest.raises(ValueError, match=f"{odd}/results.json: compares M3 with 'M1\\+SFT on practiced"):
        compare_runs([*runs, odd])
    # The same command twice gives the same verdicts (runs are reproducible): one run, not two.
    again = _finished_run(tmp_path / "again", 0.40, [True] * 57 + [False] * 43,
                          [True] * 50 + [False] * 7 + [True] * 2 + [False] * 41)
    with pytest.raises(ValueError, match=f"{again} and {runs[0]} have the same verdicts on every problem"):
        compare_runs([*runs, again])
    with pytest.raises(FileNotFoundError, match="is not a finished demo run"):
        compare_runs([tmp_path / "nowhere"])
    (runs[0] / "3.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="M1\\+SFT \\(control\\)'s per-problem verdicts .* are not there"):
        compare_runs(runs)
    # A results row that names no file is missing too (not the current folder).
    rows = json.loads((runs[1] / "results.json").read_text())
    del rows[2]["results"]
    (runs[1] / "results.json").write_text(json.dumps(rows))
    with pytest.raises(FileNotFoundError, match="M3's per-problem verdicts None are not there"):
        compare_runs(runs[1:])


def test_the_report_says_how_to_pool_seeds_when_there_is_a_control(tmp_path):
    import io

    from orca_math.demo import _report

    run = _finished_run(tmp_path / "demo", 0.4, [True] * 6 + [False] * 4, [True] * 5 + [False] * 5)
    results = json.loads((run / "results.json").read_text())
    for rows, hint in ((results, True), (results[:3], False)):
        out = io.StringIO()
        assert _report(rows, run, "rft", 0.0, 0, out) == 0
        said = out.getvalue()
        assert ("M3 vs equal-compute SFT control" in said) is hint
        assert (f"orca-math demo --seed 1 --out {run}-seed1" in said
                and f"orca-math demo --compare {run} {run}-seed1 ..." in said) is hint


def _world_run(run_dir: Path, seed: int, verdict_of) -> Path:
    """A finished run of M1, M3 and the control on 40 world test problems, each arm right where
    ``verdict_of(arm, arithmetic steps, index)`` says."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orca_math.common.records import write_parquet
    from orca_math.world.config import WorldConfig
    from orca_math.world.core import generate_problems

    test = generate_problems("test", 40, WorldConfig(max_steps=2, max_value=40), seed=seed).rows
    write_parquet(test, PROBLEM, run_dir / "world/test.parquet")
    RunManifest(run_dir / "manifest.json").update("world", outputs={"test": str(run_dir / "world/test.parquet")})
    steps = [arithmetic_steps(program_from_row(p)) for p in test]
    rows = []
    for arm in ("M1", "M3", "M1+SFT (control)"):
        correct = [verdict_of(arm, k, i) for i, k in enumerate(steps)]
        path = run_dir / f"eval-{len(rows)}.parquet"
        pq.write_table(pa.table({"problem_id": [p["id"] for p in test], "correct": correct}), path)
        rows.append({"model": arm, "accuracy": sum(correct) / len(correct), "n": len(correct), "results": str(path)})
    (run_dir / "results.json").write_text(json.dumps(rows))
    return run_dir


def test_the_report_splits_the_verdict_by_arithmetic_steps(tmp_path):
    import io

    from orca_math.demo import _report

    # On one-step problems the three arms solve the same ones; on two-step problems M3 solves
    # the even-numbered ones, the control every third, M1 none.
    def verdict_of(arm, steps, i):
        return i % 2 == 0 if steps == 1 else {"M1": False, "M3": i % 2 == 0}.get(arm, i % 3 == 0)

    runs = [_world_run(tmp_path / f"seed{s}", s, verdict_of) for s in (1, 2)]
    expected = []
    for run in runs:
        steps = {p["id"]: arithmetic_steps(program_from_row(p))
                 for p in read_parquet(run / "world/test.parquet", PROBLEM)}
        assert sorted(set(steps.values())) == [1, 2]
        expected.append([i for i, k in enumerate(steps.values()) if k == 2])
    out = io.StringIO()
    assert _report(json.loads((runs[0] / "results.json").read_text()), runs[0], "rft", 0.0, 0, out) == 0
    said = out.getvalue().splitlines()
    at = said.index("where it comes from: the same problems by arithmetic steps")
    assert said[at + 1] == ("| steps | problems | M1 | M3 | control | M3 - M1 | M3 - control "
                            "| only M3 / only control | p |")
    one, two = said[at + 3].split(" | "), said[at + 4].split(" | ")
    n2 = len(expected[0])
    wins = sum(i % 2 == 0 and i % 3 != 0 for i in expected[0])
    losses = sum(i % 3 == 0 and i % 2 != 0 for i in expected[0])
    assert one[:2] == ["| 1", str(40 - n2)] and one[2] == one[3] == one[4]
    assert one[5:] == ["+0.0", "+0.0", "0 / 0", "1 |"]
    m3 = 100 * sum(i % 2 == 0 for i in expected[0]) / n2
    assert two[:3] == ["| 2", str(n2), "0.0%"] and two[3] == f"{m3:.1f}%" and two[5] == f"{m3:+.1f}"
    assert two[-2:] == [f"{wins} / {losses}", f"{mcnemar_one_sided(wins, losses):.2g} |"]
    # --compare pools the split over the runs' own problems.
    lines = compare_runs(runs)
    at = lines.index("where it comes from: all runs' problems by arithmetic steps")
    pooled = lines[at + 4].split(" | ")
    wins = sum(i % 2 == 0 and i % 3 != 0 for e in expected for i in e)
    losses = sum(i % 3 == 0 and i % 2 != 0 for e in expected for i in e)
    assert pooled[:2] == ["| 2", str(sum(map(len, expected)))]
    assert pooled[-2:] == [f"{wins} / {losses}", f"{mcnemar_one_sided(wins, losses):.2g} |"]
    # A run whose test set is not the world's has nothing to split by.
    (runs[0] / "manifest.json").unlink()
    out = io.StringIO()
    _report(json.loads((runs[0] / "results.json").read_text()), runs[0], "rft", 0.0, 0, out)
    assert "by arithmetic steps" not in out.getvalue()


def test_sign_flip_counts_every_way_the_runs_could_have_gone():
    assert sign_flip_one_sided([1.0, 2.0, 3.0]) == 1 / 8
    assert sign_flip_one_sided([-1.0, 1.0]) == 3 / 4  # sums 0, -2, 2, 0 against 0
    assert sign_flip_one_sided([-2.0, -1.0]) == 1.0
    # 20 runs: sampled flips, a new draw each time
    assert 0 < sign_flip_one_sided([0.4, 0.2, 0.4, 0.6, 0.8] * 4) < 1e-3
    assert 0.5 < sign_flip_one_sided([1.0, -1.0] * 10) < 0.7  # exactly: 0.588


def test_mcnemar_exact_one_sided():
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_one_sided(5, 0) == pytest.approx(1 / 32)
    assert mcnemar_one_sided(10, 10) > 0.5
    assert mcnemar_one_sided(30, 12) == pytest.approx(0.00401, abs=1e-4)


def test_progress_prints_one_line_per_stage_with_counts_and_time_left(tmp_path):
    import io

    out = io.StringIO()
    progress = Progress(["world", "sft", "eval-M1"], out)
    progress("skip", "world", {"rows_in": 10, "rows_out": 10, "rows_quarantined": 0})
    progress("start", "sft", {})
    progress("end", "sft", {"rows_out": 80, "metrics": {"global_step": 5, "last_loss": 0.5},
                            "precision": {"bf16": False}})
    progress("end", "eval-M1", {"accuracy": 0.25, "rows_in": 8})
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "world" in lines[0] and "skipped" in lines[0]
    assert "sft" in lines[1] and "min left" in lines[1]
    assert "5 steps, 80 rows, loss 0.500, fp32" in lines[2]
    assert "pass@1 25.0% on 8" in lines[3]
    assert stage_counts("judge-1", {"rows_in": 4, "rows_out": 3, "rows_quarantined": 1}) == "4 in, 3 out, 1 quarantined"
    prefs = {"rows_in": 8, "rows_out": 8, "rows_quarantined": 0, "report": {"problems": 2, "problems_mastered_skipped": 1}}
    assert stage_counts("prefs-1", prefs) == "8 in, 8 out, 0 quarantined, 1 of 2 problems mastered, left out"


def test_stages_skipped_on_a_rerun_do_not_make_the_rest_look_instant():
    """A resumed run skips its first stages in no time; the pace is measured on stages that ran."""
    import io

    expected = {"sft": 200.0, "eval-M1": 20.0, "practice-1": 50.0, "eval-M2": 20.0}
    progress = Progress(list(expected), io.StringIO(), expected)
    progress("skip", "sft", {})
    progress("skip", "eval-M1", {})
    assert progress.time_left() == pytest.approx(70.0, rel=0.01)


def test_the_estimate_is_each_stages_work_at_this_machines_measured_pace():
    from orca_math.run.pace import Pace, bench_units, expected_seconds, measure_pace, run_seconds, stage_seconds

    cfgs = StageConfigs.load(REPO_ROOT / "configs/demo.yaml")
    planned = planned_stages(cfgs)
    slow, fast = Pace(0.2, 0.02, "fp32"), Pace(0.1, 0.01, "bf16")
    # Every stage's time is its work at the measured pace: a machine twice as fast is expected in half the time.
    for stage in planned:
        assert stage_seconds(stage, cfgs, slow) == pytest.approx(2 * stage_seconds(stage, cfgs, fast))
    # The work comes from the configs: twice the SFT steps or practice problems, about twice the stage.
    longer = StageConfigs.load(REPO_ROOT / "configs/demo.yaml")
    longer.sft = longer.sft.model_copy(update={"max_steps": 2 * cfgs.sft.max_steps})
    longer.run = longer.run.model_copy(update={"practice_limit": 2 * cfgs.run.practice_limit})
    for stage in ("sft", "practice-1", "rft-1", "sft-control"):
        ratio = stage_seconds(stage, longer, slow) / stage_seconds(stage, cfgs, slow)
        assert 1.6 < ratio <= 2.0, stage  # less where a start-up (the control reads all 19K SFT rows) is a larger share
    assert stage_seconds("sft", cfgs, slow) > stage_seconds("practice-1", cfgs, slow) > stage_seconds("judge-1", cfgs, slow)
    # The first sampling stage also starts the engine hosts and the judge; the other evals reuse them.
    # The run's own start and end are apart from its stages.
    expected = expected_seconds(planned, cfgs, slow)
    assert expected["eval-M1"] > expected["eval-M2"] == expected["eval-M3"] == stage_seconds("eval-M2", cfgs, slow)
    assert sum(expected.values()) == pytest.approx(2 * sum(expected_seconds(planned, cfgs, fast).values()))
    assert run_seconds(slow) == pytest.approx(2 * run_seconds(fast)) and run_seconds(fast) > 0
    units = bench_units(planned)
    assert (units["sft"], units["rft-2"], units["sft-control"]) == ("train",) * 3
    assert (units["eval-M1"], units["practice-1"], units["eval-M3"]) == ("starts", "sample", "sample")
    assert (units["world"], units["generate"], units["judge-1"]) == ("other",) * 3
    # Measured on this machine in about the seconds asked for, in the precision training will use.
    measured = measure_pace(cfgs, seconds=0.2)
    assert measured.train_step_s > 0 and measured.decode_step_s > 0 and measured.precision in ("bf16", "fp32")


def test_the_first_line_gives_the_estimate_and_later_lines_correct_it_by_the_stages_that_ran(monkeypatch):
    import io

    clock = [0.0]
    monkeypatch.setattr("orca_math.run.console.time.perf_counter", lambda: clock[0])
    out = io.StringIO()
    expected = {"sft": 300.0, "practice-1": 60.0, "rft-1": 120.0}
    progress = Progress(list(expected), out, expected, run_s=10.0,
                        units={"sft": "train", "practice-1": "sample", "rft-1": "train"})
    clock[0] = 4.0  # Ray started
    progress("start", "sft", {})
    clock[0] = 154.0  # this machine ran SFT twice as fast as expected
    progress("end", "sft", {})
    first, second = out.getvalue().splitlines()
    assert "about 8 min left" in first  # 480 s, and the run's end: 6 of its 10 s
    # Training stages at twice the pace; sampling as the bench said: its stages have not run.
    assert progress.time_left() == pytest.approx(6.0 + 60.0 + 60.0)
    assert "about 2 min left" in second
    # One unit for every stage where none is given: SFT's pace is everyone's.
    alone = Progress(list(expected), io.StringIO(), expected)
    alone("start", "sft", {})
    clock[0] = 304.0
    alone("end", "sft", {})
    assert alone.time_left() == pytest.approx(90.0)


# A whole `make demo` (seed 0, fp32 pinned to AVX2, 2-core Xeon model 167, a new machine): what the first
# line's bench expected of each stage, the run's own seconds, and when each stage started and ended.
RECORDED_EXPECTED = {
    "student": 1.0, "world": 8.4, "seeds": 1.1, "generate": 11.9, "sft": 106.2, "eval-M1": 31.4, "practice-1": 33.5,
    "judge-1": 4.7, "prefs-1": 1.1, "rft-1": 17.1, "eval-M2": 12.9, "practice-2": 33.5, "judge-2": 4.7,
    "prefs-2": 1.1, "rft-2": 17.1, "eval-M3": 12.9, "sft-control": 49.6, "eval-M1-sft-control": 12.9}
RECORDED_RUN_S = 9.2
RECORDED_TIMES = [(4, 5), (5, 10), (10, 10), (10, 19), (19, 111), (111, 149), (149, 177), (177, 181), (181, 182),
                  (182, 200), (200, 207), (207, 235), (235, 239), (239, 240), (240, 258), (258, 266), (266, 307),
                  (307, 316)]
RECORDED_END = 318


def test_the_time_left_stays_within_a_quarter_of_a_recorded_runs_all_along(monkeypatch):
    """Replayed through a recorded run: every line's time left is within 25% while more than a minute
    is left. The first stages (rows through Ray Data, 30% faster than the bench priced them) do not
    speed up the estimate of SFT: each part of the bench is corrected by its own stages."""
    import io

    from orca_math.run.pace import bench_units

    clock = [0.0]
    monkeypatch.setattr("orca_math.run.console.time.perf_counter", lambda: clock[0])
    planned = list(RECORDED_EXPECTED)
    progress = Progress(planned, io.StringIO(), RECORDED_EXPECTED, RECORDED_RUN_S, bench_units(planned))
    errors = {}
    for stage, (start, end) in zip(planned, RECORDED_TIMES, strict=True):
        for event, t in (("start", start), ("end", end)):
            clock[0] = t
            progress(event, stage, {})
            if RECORDED_END - t > 60:
                errors[f"{stage} {event}"] = progress.time_left() / (RECORDED_END - t) - 1
    assert max(abs(e) for e in errors.values()) < 0.25, errors
    assert errors["generate end"] > 0  # 300 s were left; a correction by the first stages said 204 s


def test_noise_is_two_standard_errors_of_the_difference():
    a, b = {"accuracy": 0.08, "n": 500}, {"accuracy": 0.08, "n": 500}
    assert noise_points(a, b) == pytest.approx(200 * (2 * 0.08 * 0.92 / 500) ** 0.5)
    assert 3.4 < noise_points(a, b) < 3.5


@pytest.mark.slow
def test_short_demo_runs_every_stage(tmp_path, ray_local, caplog):
    import logging

    from orca_math.run.recipe import run_pipeline

    run_dir = tmp_path / "demo"
    caplog.set_level(logging.INFO, logger="orca_math.judge.serve_judge")
    caplog.set_level(logging.INFO, logger="orca_math.common.sampling.hosts")
    results = run_pipeline(small_demo_config(tmp_path / "demo.yaml"), run_dir)
    # Training runs in the driver, so the judge stayed up: started once for 2 judge and 4 eval stages.
    assert sum("judge (exact) ready" in r.getMessage() for r in caplog.records) == 1
    # One engine process from the first eval to the last: a round of one partition frees no CPUs.
    leases = [r.getMessage() for r in caplog.records if r.name == "orca_math.common.sampling.hosts"]
    assert [", 1 started" in m for m in leases] == [True, False, False, False, False, False], leases
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

    # The control trained as many tokens as both rounds (it stops at the first step that reaches
    # them, the schedule fitted to them), with the rounds' trainer settings.
    control = manifest.get("sft-control")
    rounds_tokens = sum(manifest.get(f"rft-{k}")["metrics"]["num_input_tokens_seen"] for k in (1, 2))
    assert control["control_sequences"] == 2 * 2 * 4
    assert control["control_tokens"] == control["config"]["max_tokens"] == rounds_tokens > 0
    assert control["metrics"]["stopped_by_token_budget"]
    assert rounds_tokens <= control["metrics"]["num_input_tokens_seen"] < rounds_tokens + 4 * 512
    assert control["config"]["learning_rate"] == manifest.get("rft-1")["config"]["learning_rate"]
    # No time cap anywhere: every CPU trains the same steps (a slower one takes longer), and a control
    # the clock cut short would not have trained as much as the rounds.
    assert all(manifest.get(s)["config"]["max_time_s"] is None for s in ("sft", "rft-1", "rft-2", "sft-control"))

    # Results: every model evaluated on the same held-out world problems.
    assert [r["model"] for r in results] == ["M1", "M2", "M3", "M1+SFT (control)"]
    assert all(r["n"] == 10 and 0 <= r["accuracy"] <= 1 for r in results)
    assert json.loads((run_dir / "results.json").read_text()) == results
    md = (run_dir / "results.md").read_text()
    assert "world-test pass@1" in md and "M1+SFT (control)" in md
    assert (run_dir / "results.png").stat().st_size > 0
    for label in ("M1", "M2", "M3", "M1-sft-control"):
        assert manifest.get(f"eval-{label}")["rows_in"] == 10

    # The stricter control: plain SFT on the very problems the rounds practiced. Only the control
    # and its eval rerun; it reads the 16 practiced problems and nothing else.
    finished = {s: manifest.get(s)["finished_at"] for s in STAGES}
    results = run_pipeline(small_demo_config(tmp_path / "demo.yaml"), run_dir, {"sft_control_data": "practiced"})
    manifest = RunManifest(run_dir / "manifest.json")
    rerun = [s for s in STAGES if manifest.get(s)["finished_at"] != finished[s]]
    assert rerun == ["sft-control", "eval-M1-sft-control"]
    control = manifest.get("sft-control")
    assert control["rows_in"] == 16 and control["control_tokens"] == rounds_tokens
    assert {p["id"] for p in read_parquet(run_dir / "sft-control/problems.parquet", PROBLEM)} == practiced[0] | practiced[1]
    assert results[-1]["model"] == "M1+SFT on practiced problems (control)"


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
    from orca_math.world.config import WorldConfig
    from orca_math.world.core import generate_problems
    from orca_math.world.teacher import FlowSettings, ProceduralTeacherConfig, expand_seed

    seed = generate_problems("train", 1, WorldConfig(n_train=1, n_test=1)).rows[0]
    out = expand_seed(seed, ProceduralTeacherConfig(), FlowSettings(include_seeds=True))
    kept_seed = [p for p in out.problems if p["id"] == seed["id"]]
    assert len(kept_seed) == 1 and kept_seed[0]["provenance"]["flow"] == "seed"
