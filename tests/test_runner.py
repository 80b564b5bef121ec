"""What a rerun skips, resumes or redoes: the stage runner and its one signature per stage."""

import json
import logging

import pytest
from pydantic import Field

from orca_math.common.config import StageConfig
from orca_math.common.manifest import RunManifest
from orca_math.common.records import RowCountError
from orca_math.common.runner import ManifestFormatError, Runner, Stage
from orca_math.common.sampling.config import VLLMEngineConfig
from orca_math.run.results import ARM_OFFSET, plot_layout, results_markdown, write_results


class ToyConfig(StageConfig):
    lr: float = Field(1e-3)
    engine: VLLMEngineConfig = Field(default_factory=VLLMEngineConfig)
    workers: int = Field(1)
    max_steps: int = Field(10)

    execution_fields = frozenset({"workers"})
    resumable_fields = frozenset({"max_steps"})


class Calls:
    """A stage body that writes a file and remembers how it was called."""

    def __init__(self, fields=None, fail=None):
        self.calls, self.fields, self.fail = [], fields or {}, fail

    def __call__(self, c):
        self.calls.append(c.resume)
        c.out.mkdir(parents=True, exist_ok=True)
        (c.out / "out.txt").write_text("x")
        if self.fail:
            raise self.fail
        return self.fields


def stage(run_dir, name="sft", cfg=None, body=None, after=(), inputs=None):
    return Stage(name, cfg or ToyConfig(), body or Calls(), out=run_dir / name, after=after, inputs=inputs or {})


def test_finished_stage_with_same_signature_is_skipped(tmp_path):
    body = Calls()
    Runner(tmp_path).run(stage(tmp_path, body=body))
    Runner(tmp_path).run(stage(tmp_path, body=body))
    assert body.calls == [False]
    assert RunManifest(tmp_path / "manifest.json").get("sft")["status"] == "done"


def test_interrupted_stage_resumes_and_keeps_its_outputs(tmp_path):
    with pytest.raises(RuntimeError, match="killed") as e:
        Runner(tmp_path).run(stage(tmp_path, body=Calls(fail=RuntimeError("killed"))))
    assert e.value.__notes__ == [f"stage sft failed; rerun the same command to resume ({tmp_path})"]
    assert RunManifest(tmp_path / "manifest.json").get("sft")["status"] == "failed"
    (tmp_path / "sft" / "checkpoint").mkdir()
    body = Calls()
    Runner(tmp_path).run(stage(tmp_path, body=body))
    assert body.calls == [True] and (tmp_path / "sft" / "checkpoint").exists()


def test_changed_config_reruns_stage_from_scratch_and_says_what_changed(tmp_path, caplog):
    Runner(tmp_path).run(stage(tmp_path))
    (tmp_path / "sft" / "stale.parquet").write_text("x")
    body = Calls()
    with caplog.at_level(logging.INFO):
        Runner(tmp_path).run(stage(tmp_path, cfg=ToyConfig(lr=2e-3), body=body))
    assert body.calls == [False] and not (tmp_path / "sft" / "stale.parquet").exists()
    assert "lr: 0.001 -> 0.002" in caplog.text


def test_execution_settings_do_not_change_the_signature(tmp_path):
    body = Calls()
    Runner(tmp_path).run(stage(tmp_path, body=body))
    faster = ToyConfig(workers=8, engine=VLLMEngineConfig(concurrency=4, batch_size=64, use_gpu=False))
    Runner(tmp_path).run(stage(tmp_path, cfg=faster, body=body))
    assert body.calls == [False]
    # ...but what the output depends on does, nested configs included.
    Runner(tmp_path).run(stage(tmp_path, cfg=ToyConfig(engine=VLLMEngineConfig(dtype="float32")), body=body))
    assert body.calls == [False, False]


def test_a_change_in_resumable_fields_only_resumes_even_a_finished_stage(tmp_path, caplog):
    body = Calls()
    Runner(tmp_path).run(stage(tmp_path, body=body))
    (tmp_path / "sft" / "checkpoint").mkdir()
    with caplog.at_level(logging.INFO):
        Runner(tmp_path).run(stage(tmp_path, cfg=ToyConfig(max_steps=20), body=body))
    assert body.calls == [False, True] and (tmp_path / "sft" / "checkpoint").exists()
    assert "resuming with max_steps: 10 -> 20" in caplog.text
    Runner(tmp_path).run(stage(tmp_path, cfg=ToyConfig(max_steps=20), body=body))
    assert body.calls == [False, True]  # done with the new value: skipped
    # With anything else changed too, it is redone from scratch.
    Runner(tmp_path).run(stage(tmp_path, cfg=ToyConfig(max_steps=30, lr=2e-3), body=body))
    assert body.calls == [False, True, False] and not (tmp_path / "sft" / "checkpoint").exists()


def test_a_resumed_stage_still_changes_the_stages_after_it(tmp_path):
    body = Calls()

    def chain(steps):
        r = Runner(tmp_path)
        r.run(stage(tmp_path, "sft", ToyConfig(max_steps=steps)))
        r.run(stage(tmp_path, "eval", body=body, after=("sft",)))

    chain(10)
    chain(20)
    assert body.calls == [False, False]


def test_an_input_given_as_a_callable_is_asked_when_the_stage_runs_and_hashed_by_content(tmp_path):
    from orca_math.common.runner import content_hash

    data = tmp_path / "data.jsonl"
    data.write_text("a\n")
    body = Calls()
    Runner(tmp_path).run(stage(tmp_path, body=body, inputs={"data": lambda: content_hash(data)}))
    data.write_text("a\n")  # the same bytes rewritten: skipped
    Runner(tmp_path).run(stage(tmp_path, body=body, inputs={"data": lambda: content_hash(data)}))
    data.write_text("b\n")
    Runner(tmp_path).run(stage(tmp_path, body=body, inputs={"data": lambda: content_hash(data)}))
    assert body.calls == [False, False]
    assert content_hash("gsm8k-train") == "gsm8k-train"


def test_what_a_stage_frees_is_freed_before_it_runs_and_only_then(tmp_path, monkeypatch):
    import orca_math.common.sampling.hosts as hosts
    import orca_math.judge.serve_judge as serve_judge

    freed = []
    monkeypatch.setattr(hosts, "release_engines", lambda gpu_only=False: freed.append(f"engines gpu_only={gpu_only}"))
    monkeypatch.setattr(serve_judge, "release_judge", lambda: freed.append("judge"))

    def body(c):
        freed.append("ran")

    Runner(tmp_path).run(Stage("train", ToyConfig(), body, out=tmp_path / "t", frees=("gpu_engines", "judge")))
    Runner(tmp_path).run(Stage("train", ToyConfig(), body, out=tmp_path / "t", frees=("gpu_engines", "judge")))
    assert freed == ["engines gpu_only=True", "judge", "ran"]  # the skipped rerun frees nothing
    with pytest.raises(ValueError, match=r"stage x: frees \['gpus'\]: unknown"):
        Stage("x", ToyConfig(), body, out=tmp_path / "x", frees=("gpus",))


def test_upstream_change_propagates_down_the_chain(tmp_path, caplog):
    def chain(lr, body):
        r = Runner(tmp_path)
        r.run(stage(tmp_path, "generate", ToyConfig(lr=lr)))
        r.run(stage(tmp_path, "sft", body=body, after=("generate",)))

    body = Calls()
    chain(1e-3, body)
    chain(1e-3, body)
    assert body.calls == [False]
    with caplog.at_level(logging.INFO):
        chain(5e-3, body)
    assert body.calls == [False, False] and "upstream generate changed" in caplog.text


def test_a_moved_run_folder_still_resumes(tmp_path):
    body = Calls()
    a, b = tmp_path / "a", tmp_path / "b"
    Runner(a).run(stage(a, body=body, inputs={"data": str(a / "seeds" / "problems.parquet")}))
    a.rename(b)
    Runner(b).run(stage(b, body=body, inputs={"data": str(b / "seeds" / "problems.parquet")}))
    assert body.calls == [False]


def test_rows_in_must_equal_rows_out_plus_quarantined(tmp_path):
    body = Calls(fields={"rows_in": 10, "rows_out": 7, "rows_quarantined": 2})
    with pytest.raises(RowCountError, match=r"sft: rows in \(10\) != rows out \(7\) \+ quarantined \(2\)"):
        Runner(tmp_path).run(stage(tmp_path, body=body))
    entry = Runner(tmp_path).run(stage(tmp_path, body=Calls(fields={"rows_in": 3, "rows_out": 2,
                                                                   "rows_quarantined": 1})))
    assert entry["status"] == "done" and entry["rows_out"] == 2


def test_a_run_folder_from_before_signatures_is_refused_by_name(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": {"sft": {"status": "done", "fingerprint": "ab"}}}))
    with pytest.raises(ManifestFormatError, match="manifest.json: written by an orca-math before stage signatures"):
        Runner(tmp_path)


def test_results_table_files(tmp_path):
    results = [{"stage": "eval-M1", "model": "M1", "accuracy": 0.25, "n": 8},
               {"stage": "eval-M2", "model": "M2", "accuracy": 0.5, "n": 8}]
    md = write_results(results, tmp_path, "t")
    assert md == results_markdown(results) and "| eval-M2 | M2 | 0.5000 | 8 |" in md
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert (tmp_path / "results.json").exists() and (tmp_path / "results.md").exists()


def test_plot_draws_the_rounds_as_a_line_and_the_control_beside_the_last_round_with_intervals(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def evaluated(name: str, right: list[bool]) -> str:
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"problem_id": [f"p{i}" for i in range(len(right))], "correct": right}), path)
        return str(path)

    m3 = [True] * 30 + [False] * 10
    control = [True] * 20 + [False] * 20  # 10 problems only M3 solved, none only the control
    results = [{"stage": "eval-M1", "model": "M1", "accuracy": 0.4, "n": 40},
               {"stage": "eval-M2", "model": "M2", "accuracy": 0.6, "n": 40},
               {"stage": "eval-M3", "model": "M3", "accuracy": 0.75, "n": 40, "results": evaluated("m3", m3)},
               {"stage": "eval-control", "model": "M1+SFT (control)", "accuracy": 0.5, "n": 40,
                "results": evaluated("control", control)}]
    layout = plot_layout(results)
    assert [(p["label"], p["x"]) for p in layout["line"]] == [("M1", 0), ("M2", 1), ("M3", 2)]
    # The control is its own marker right of M3 (same compute), not the line's next point.
    assert [(p["label"], p["x"]) for p in layout["beside"]] == [("M1+SFT (control)", 2 + ARM_OFFSET)]
    for p in layout["line"] + layout["beside"]:
        assert p["lo"] < p["y"] < p["hi"]
    # Wilson 95% interval of 30 of 40.
    m3_point = layout["line"][2]
    assert m3_point["lo"] == pytest.approx(59.8, abs=0.1) and m3_point["hi"] == pytest.approx(85.8, abs=0.1)
    assert layout["caption"] == "M3 vs control: +25.0 points, McNemar p = 0.00098: practice beat plain SFT"
    # Without a control, the caption is the rounds' gain.
    assert plot_layout(results[:2])["caption"] == "M2 vs M1: +20.0 points" and not plot_layout(results[:2])["beside"]
    write_results(results, tmp_path, "t")
    assert (tmp_path / "results.png").stat().st_size > 1000
