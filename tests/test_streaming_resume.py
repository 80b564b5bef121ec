"""SIGKILL a streaming stage mid-way, rerun it: only the missing rows are computed, and the output
is the uninterrupted run's, row for row. The driver never collects a stage's dataset.

The killed run is a separate driver joined to the session's Ray (SIGKILL takes its Ray Data actors
with it); the canned engine stands in for vLLM, since the point is the data path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orca_math.common.manifest import RunManifest
from orca_math.common.records import read_parquet, write_parquet
from orca_math.common.schema import EVAL_RESULT, JUDGMENT, PROBLEM, QUARANTINE, SAMPLE, empty_provenance, stable_id
from orca_math.evaluate.config import EvalConfig
from orca_math.judge.config import JudgeConfig, JudgeServeConfig
from orca_math.practice.config import PracticeConfig

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
N_PROBLEMS = 240
BLANK = len(range(0, N_PROBLEMS, 25))  # problems with a blank question
# Slow enough to be killed mid-way: every 25th question is blank (its samples are quarantined).
ENGINE = {"kind": "canned", "use_gpu": False, "batch_size": 16, "canned_delay_s": 0.25}
# Batches of 16 samples wait for company: the judge takes a few seconds, so it can be killed too.
SLOW_JUDGE = JudgeServeConfig(min_replicas=1, max_replicas=1, num_cpus=0.25, max_batch_size=1024,
                              batch_wait_timeout_s=0.2)

# What the killed driver runs: one stage, its arguments as JSON.
STAGE_MAIN = """
import json, sys
from orca_math.evaluate.config import EvalConfig
from orca_math.judge.config import JudgeConfig, JudgeServeConfig
from orca_math.practice.config import PracticeConfig
stage, a = sys.argv[1], json.loads(sys.argv[2])
if stage == "practice":
    from orca_math.practice.stage import run_practice
    run_practice("canned", a["problems"], a["out"], PracticeConfig.model_validate(a["cfg"]), model_name="M1")
elif stage == "judge":
    from orca_math.judge.stage import run_judge
    run_judge(a["samples"], a["problems"], a["out"], JudgeConfig(), JudgeServeConfig.model_validate(a["serve"]),
              batch_size=16)
else:
    from orca_math.evaluate.stage import run_eval
    run_eval("canned", EvalConfig.model_validate(a["cfg"]), a["out"], serve_cfg=JudgeServeConfig.model_validate(a["serve"]))
"""


@pytest.fixture(scope="module")
def problems(tmp_path_factory) -> Path:
    rows = [{"id": f"p{i:04d}", "question": " " if i % 25 == 0 else f"What is {i} + 1?",
             "reference_solution": f"{i} + 1 = {i + 1}\n#### {i + 1}", "reference_answer": str(i + 1),
             "source": "unit", "provenance": empty_provenance(flow="seed")} for i in range(N_PROBLEMS)]
    return write_parquet(rows, PROBLEM, tmp_path_factory.mktemp("streaming") / "problems.parquet")


@pytest.fixture(scope="module")
def judge_app(ray_local):
    from orca_math.judge.serve_judge import ensure_judge_app, release_judge

    ensure_judge_app(JudgeConfig(), SLOW_JUDGE)
    yield
    release_judge()


@pytest.fixture
def driver_never_collects(monkeypatch):
    """Run a stage where the driver cannot pull a dataset's rows to itself; workers (other
    processes) are unaffected. ``driver_never_collects(run_stage, *args)``."""
    import ray.data

    def refuse(name):
        def call(*args, **kwargs):
            raise AssertionError(f"the driver called {name}: it must not collect the dataset")
        return call

    def run(stage_fn, *args, **kwargs):
        with monkeypatch.context() as m:
            for name in ("take_all", "take", "take_batch", "to_pandas", "to_arrow_refs", "iter_rows", "materialize"):
                m.setattr(ray.data.Dataset, name, refuse(f"Dataset.{name}"))
            for name in ("from_items", "from_pandas", "from_arrow"):
                m.setattr(ray.data, name, refuse(f"ray.data.{name}"))
            m.setattr("orca_math.common.records.read_table", refuse("records.read_table"))
            return stage_fn(*args, **kwargs)

    return run


def _kill_mid_stage(stage: str, args: dict, out: Path, min_parts: int) -> None:
    """Run ``stage`` in its own driver and SIGKILL it once ``min_parts`` batches have committed."""
    import ray

    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", STAGE_MAIN, stage, json.dumps(args)], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = out / ".committed"
    deadline = time.time() + 180
    try:
        while time.time() < deadline:
            done = [p for p in committed.glob("part-*.parquet") if p.name != "part-read.parquet"] \
                if committed.exists() else []
            if len(done) >= min_parts:
                break
            assert proc.poll() is None, f"{stage} ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail(f"{stage} committed nothing in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert RunManifest(out / "manifest.json").get(stage)["status"] == "running"


def _rows(path: Path, schema, key) -> list[dict]:
    return sorted(read_parquet(path, schema), key=key)


def _quarantine(out: Path) -> list[dict]:
    return _rows(out / "quarantine.parquet", QUARANTINE, lambda q: (q["reason"], q["raw"]))


def _check_entry(entry: dict, rows_in: int, killed: bool) -> None:
    assert entry["status"] == "done" and entry["rows_in"] == rows_in
    assert entry["rows_in"] == entry["rows_out"] + entry["rows_quarantined"]
    assert entry["rows_restored"] + entry["rows_computed"] == entry["rows_in"]  # one unit, named
    assert entry["row_unit"] == ("problems" if entry.get("accuracy") is not None else "samples")
    if killed:
        assert entry["rows_restored"] > 0 and entry["rows_computed"] > 0
    else:
        assert entry["rows_restored"] == 0


def test_practice_killed_mid_way_resumes_to_the_uninterrupted_samples(problems, tmp_path, ray_local,
                                                                       driver_never_collects):
    from orca_math.practice.stage import run_practice

    cfg = PracticeConfig.model_validate({"engine": ENGINE})
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    driver_never_collects(run_practice, "canned", problems, ref, cfg, model_name="M1")
    _kill_mid_stage("practice", {"problems": str(problems), "out": str(killed), "cfg": cfg.model_dump(mode="json")},
                    killed, min_parts=2)
    run_practice("canned", problems, killed, cfg, model_name="M1")

    key = lambda s: s["sample_id"]  # noqa: E731
    want, got = _rows(ref / "samples.parquet", SAMPLE, key), _rows(killed / "samples.parquet", SAMPLE, key)
    assert got == want and len(want) == len({s["sample_id"] for s in want})
    assert _quarantine(killed) == _quarantine(ref)
    assert {q["reason"] for q in _quarantine(ref)} == {"empty completion"}
    for out, was_killed in ((ref, False), (killed, True)):
        entry = RunManifest(out / "manifest.json").get("practice")
        _check_entry(entry, 4 * N_PROBLEMS, was_killed)  # in samples, like every count of practice
        assert entry["rows_in"] == 4 * N_PROBLEMS and entry["rows_quarantined"] == 4 * BLANK


def test_judge_killed_mid_way_resumes_to_the_uninterrupted_verdicts(problems, tmp_path, judge_app,
                                                                     driver_never_collects):
    from orca_math.judge.stage import run_judge

    pids = [f"p{i:04d}" for i in range(N_PROBLEMS)] + [f"gone{i}" for i in range(8)]  # 8 unknown problems
    samples = [{"sample_id": stable_id("M1", pid, k), "problem_id": pid, "model": "M1", "sample_index": k,
                "prompt": "p", "text": f"#### {int(pid[1:]) + k % 2 if pid.startswith('p') else 0}",
                "prompt_tokens": 1, "completion_tokens": 2, "finish_reason": "stop"} for pid in pids for k in range(4)]
    samples_path = write_parquet(samples, SAMPLE, tmp_path / "samples.parquet")
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    driver_never_collects(run_judge, samples_path, problems, ref, JudgeConfig(), SLOW_JUDGE, batch_size=16)
    _kill_mid_stage("judge", {"samples": str(samples_path), "problems": str(problems), "out": str(killed),
                              "serve": SLOW_JUDGE.model_dump(mode="json")}, killed, min_parts=3)
    run_judge(samples_path, problems, killed, JudgeConfig(), SLOW_JUDGE, batch_size=16)

    key = lambda j: j["sample_id"]  # noqa: E731
    want, got = _rows(ref / "judgments.parquet", JUDGMENT, key), _rows(killed / "judgments.parquet", JUDGMENT, key)
    assert got == want and len(want) == 4 * N_PROBLEMS
    assert sum(j["correct"] for j in want) == 2 * N_PROBLEMS  # every other sample is off by one
    assert _quarantine(killed) == _quarantine(ref)
    assert [q["reason"] for q in _quarantine(ref)] == ["unknown problem"] * 32
    for out, was_killed in ((ref, False), (killed, True)):
        _check_entry(RunManifest(out / "manifest.json").get("judge"), len(samples), was_killed)


def test_eval_killed_mid_way_resumes_to_the_uninterrupted_results(problems, tmp_path, judge_app,
                                                                   driver_never_collects):
    from orca_math.evaluate.stage import run_eval

    cfg = EvalConfig.model_validate({"data": str(problems), "engine": ENGINE})
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    want_summary = driver_never_collects(run_eval, "canned", cfg, ref, serve_cfg=SLOW_JUDGE)
    _kill_mid_stage("eval", {"out": str(killed), "cfg": cfg.model_dump(mode="json"),
                             "serve": SLOW_JUDGE.model_dump(mode="json")}, killed, min_parts=2)
    got_summary = run_eval("canned", cfg, killed, serve_cfg=SLOW_JUDGE)

    key = lambda r: r["problem_id"]  # noqa: E731
    want, got = _rows(ref / "results.parquet", EVAL_RESULT, key), _rows(killed / "results.parquet", EVAL_RESULT, key)
    n = N_PROBLEMS - BLANK  # blank questions are quarantined on read
    assert got == want and len(want) == n
    assert _quarantine(killed) == _quarantine(ref) and len(_quarantine(ref)) == BLANK
    for k in ("n", "correct", "accuracy", "data_hash"):
        assert got_summary[k] == want_summary[k], k
    assert want_summary["accuracy"] == sum(r["correct"] for r in want) / n
    for out, was_killed in ((ref, False), (killed, True)):
        entry = RunManifest(out / "manifest.json").get("eval")
        _check_entry(entry, N_PROBLEMS, was_killed)  # in problems, the quarantined blank ones included
        assert entry["rows_in"] == N_PROBLEMS
