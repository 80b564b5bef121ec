"""What a rerun of `orca-math run` skips, resumes or redoes."""

from orca_math.manifest import RunManifest
from orca_math.pipeline.plan import Action, fingerprint, plan_stage, prepare_stage
from orca_math.pipeline.results import results_markdown, write_results


def test_finished_stage_with_same_fingerprint_is_skipped(tmp_path):
    m = RunManifest(tmp_path / "manifest.json")
    fp = fingerprint("sft", "cfg1", [], {"data": "p"})
    m.update("sft", status="done", fingerprint=fp)
    assert plan_stage(m, "sft", fp).action is Action.SKIP


def test_interrupted_stage_resumes_and_keeps_its_outputs(tmp_path):
    m = RunManifest(tmp_path / "manifest.json")
    fp = fingerprint("sft", "cfg1", [], {})
    m.update("sft", status="running", fingerprint=fp)
    plan = plan_stage(m, "sft", fp)
    assert plan.action is Action.RESUME
    out = tmp_path / "sft"
    (out / "checkpoint").mkdir(parents=True)
    prepare_stage(m, plan, out)
    assert (out / "checkpoint").exists() and m.get("sft")["status"] == "pending"


def test_changed_config_reruns_stage_from_scratch(tmp_path):
    m = RunManifest(tmp_path / "manifest.json")
    m.update("sft", status="done", fingerprint=fingerprint("sft", "cfg1", [], {}))
    plan = plan_stage(m, "sft", fingerprint("sft", "cfg2", [], {}))
    assert plan.action is Action.RUN
    out = tmp_path / "sft"
    out.mkdir()
    (out / "stale.parquet").write_text("x")
    prepare_stage(m, plan, out)
    assert not out.exists()
    # The stage's own "already done" check must not see the old entry as done.
    assert not m.is_done("sft", m.get("sft").get("config_hash", ""))


def test_upstream_change_propagates_down_the_chain():
    gen_a, gen_b = fingerprint("generate", "g1", [], {}), fingerprint("generate", "g2", [], {})
    assert fingerprint("sft", "s", [gen_a], {}) != fingerprint("sft", "s", [gen_b], {})
    assert fingerprint("sft", "s", [gen_a], {}) == fingerprint("sft", "s", [gen_a], {})


def test_results_table_files(tmp_path):
    results = [{"stage": "eval-M1", "model": "M1", "accuracy": 0.25, "n": 8},
               {"stage": "eval-M2", "model": "M2", "accuracy": 0.5, "n": 8}]
    md = write_results(results, tmp_path, "t")
    assert md == results_markdown(results) and "| eval-M2 | M2 | 0.5000 | 8 |" in md
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert (tmp_path / "results.json").exists() and (tmp_path / "results.md").exists()
