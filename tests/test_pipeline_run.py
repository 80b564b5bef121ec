"""The whole loop on CPU: tiny student, a few dozen GSM8K problems, one round of practice + KTO."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orca_math.common.config import load_yaml
from orca_math.common.manifest import RunManifest
from orca_math.common.records import read_parquet
from orca_math.common.schema import JUDGMENT, KTO_EXAMPLE, PREFERENCE_PAIR, PROBLEM, SAMPLE

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
STAGES = ["student", "seeds", "sft", "eval-M1", "practice-1", "judge-1", "prefs-1", "kto-1", "eval-M2"]


def small_run_config(path: Path, **run_overrides) -> Path:
    """configs/tiny.yaml cut down to test size."""
    cfg = load_yaml(REPO / "configs/tiny.yaml")  # extends resolved: every section in full
    cfg["run"].update(seed_limit=16, rounds=1, **run_overrides)
    cfg["eval"]["limit"] = 8
    cfg["eval"]["decoding"]["max_tokens"] = 48
    cfg["practice"]["decoding"]["max_tokens"] = 48
    cfg["sft"].update(max_steps=6, save_steps=3)
    cfg["kto"].update(max_steps=4, save_steps=2)
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def run_config(tmp_path_factory) -> Path:
    return small_run_config(tmp_path_factory.mktemp("cfg") / "run.yaml")


@pytest.fixture(scope="module")
def finished_run(run_config, ray_local, gsm8k_dir, tmp_path_factory):
    from orca_math.run.recipe import run_pipeline

    run_dir = tmp_path_factory.mktemp("run") / "r"
    start = time.perf_counter()
    results = run_pipeline(run_config, run_dir)
    print(f"whole loop: {time.perf_counter() - start:.0f}s")
    return run_dir, results


def _finished_at(run_dir: Path) -> dict[str, float]:
    return {k: v.get("finished_at") for k, v in RunManifest(run_dir / "manifest.json").stages.items()}


def _ids(run_dir: Path) -> dict[str, list]:
    r = run_dir / "round1"
    return {
        "samples": sorted(s["sample_id"] for s in read_parquet(r / "practice/samples.parquet", SAMPLE)),
        "judgments": sorted(j["sample_id"] for j in read_parquet(r / "judge/judgments.parquet", JUDGMENT)),
        "pairs": sorted(p["pair_id"] for p in read_parquet(r / "prefs/pairs.parquet", PREFERENCE_PAIR)),
        "kto": sorted(e["example_id"] for e in read_parquet(r / "prefs/kto.parquet", KTO_EXAMPLE)),
    }


def test_every_stage_ran_and_counts_add_up(finished_run):
    run_dir, results = finished_run
    manifest = RunManifest(run_dir / "manifest.json")
    assert [s for s in STAGES if manifest.get(s) and manifest.get(s)["status"] == "done"] == STAGES
    for name in STAGES:
        e = manifest.get(name)
        if "rows_in" in e:
            assert e["rows_in"] == e["rows_out"] + e["rows_quarantined"], name
    assert [r["stage"] for r in results] == ["eval-M1", "eval-M2"]
    assert json.loads((run_dir / "results.json").read_text()) == results
    assert all(r["n"] == 8 and 0 <= r["accuracy"] <= 1 for r in results)
    assert "| eval-M2 | M2 |" in (run_dir / "results.md").read_text()
    assert (run_dir / "results.png").stat().st_size > 1000
    for m in ("M0", "M1", "M2"):
        assert (run_dir / "models" / m / "config.json").exists()


def test_every_sample_judged_and_every_pair_from_judged_samples(finished_run):
    run_dir, _ = finished_run
    r = run_dir / "round1"
    problems = {p["id"]: p for p in read_parquet(run_dir / "seeds/problems.parquet", PROBLEM)}
    samples = read_parquet(r / "practice/samples.parquet", SAMPLE)
    judgments = {j["sample_id"]: j for j in read_parquet(r / "judge/judgments.parquet", JUDGMENT)}
    assert len(problems) == 16 and len(samples) == 16 * 4
    assert {s["sample_id"] for s in samples} == set(judgments)  # every sample judged, none invented
    assert len(judgments) == len(samples)  # no duplicates
    verdict_of_text = {}
    for s in samples:
        verdict_of_text.setdefault((s["problem_id"], s["text"]), judgments[s["sample_id"]]["correct"])
    wrong_texts = {s["text"] for s in samples if not judgments[s["sample_id"]]["correct"]}
    pairs = read_parquet(r / "prefs/pairs.parquet", PREFERENCE_PAIR)
    assert pairs and len({p["pair_id"] for p in pairs}) == len(pairs)
    for p in pairs:
        assert p["problem_id"] in problems
        if p["chosen_source"] == "teacher":
            assert p["chosen"] == problems[p["problem_id"]]["reference_solution"]
        else:
            assert verdict_of_text[(p["problem_id"], p["chosen"])] is True
        if p["rejected_source"] == "student":
            assert verdict_of_text[(p["problem_id"], p["rejected"])] is False
        else:
            assert p["rejected"] in wrong_texts
    kto = pd.read_parquet(r / "prefs/kto.parquet")
    assert kto["label"].any() and (~kto["label"]).any()
    report = json.loads((r / "prefs/report.json").read_text())
    assert sum(report["correct_histogram"].values()) == 16


def test_rerun_skips_finished_stages(finished_run, run_config):
    from orca_math.run.recipe import run_pipeline

    run_dir, results = finished_run
    before = _finished_at(run_dir)
    start = time.perf_counter()
    assert run_pipeline(run_config, run_dir) == results
    assert time.perf_counter() - start < 30
    assert _finished_at(run_dir) == before


def test_changing_a_stage_config_reruns_it_and_everything_after(finished_run, tmp_path):
    from orca_math.run.recipe import run_pipeline

    run_dir, _ = finished_run
    copy = tmp_path / "r"
    shutil.copytree(run_dir, copy)  # a copied run folder resumes like the original
    before = _finished_at(copy)
    cfg = yaml.safe_load(small_run_config(tmp_path / "c.yaml").read_text())
    cfg.setdefault("prefs", {})["max_pairs_per_problem"] = 2  # the presets leave prefs at its defaults
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run_pipeline(tmp_path / "c.yaml", copy)
    after = _finished_at(copy)
    rerun = {s for s in STAGES if after[s] != before[s]}
    assert rerun == {"prefs-1", "kto-1", "eval-M2"}


def test_killed_run_resumes_to_the_same_outputs(finished_run, run_config, tmp_path):
    """SIGKILL the whole job mid-practice, rerun: same row ids as the uninterrupted run, no duplicates."""
    from orca_math.run.recipe import run_pipeline

    reference, _ = finished_run
    run_dir = tmp_path / "killed"
    # The finished run up to eval-M1 (a copied folder resumes like the original): the job starts at
    # practice, not 40 s of training and evaluating earlier.
    shutil.copytree(reference, run_dir)
    manifest = RunManifest(run_dir / "manifest.json")
    for stage in STAGES[STAGES.index("practice-1"):]:
        del manifest.stages[stage]
    manifest.save()
    env = {**os.environ, "RAY_ADDRESS": "local"}  # its own Ray, killed with it
    proc = subprocess.Popen([sys.executable, "-m", "orca_math.cli", "run", "--config", str(run_config),
                             "--out", str(run_dir)], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    try:
        while time.time() < deadline:
            m = run_dir / "manifest.json"
            if m.exists() and (RunManifest(m).get("practice-1") or {}).get("status") == "running":
                break
            assert proc.poll() is None, "run ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("practice never started")
        time.sleep(3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert RunManifest(run_dir / "manifest.json").get("practice-1")["status"] == "running"

    run_pipeline(run_config, run_dir)
    manifest = RunManifest(run_dir / "manifest.json")
    assert all(manifest.get(s)["status"] == "done" for s in STAGES)
    assert manifest.get("eval-M1")["finished_at"] == RunManifest(reference / "manifest.json").get("eval-M1")["finished_at"]
    got, want = _ids(run_dir), _ids(reference)
    for kind in want:
        assert len(got[kind]) == len(set(got[kind])), f"duplicate {kind}"
        assert got[kind] == want[kind], kind
