"""Streaming stages: parts committed per batch, resume from them, and the canned stand-in engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow.dataset as pads
import pytest

from orca_math.common.records import StageOutput, read_parquet, write_parquet
from orca_math.common.sampling.canned import CannedSampler
from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig
from orca_math.common.schema import JUDGMENT, PROBLEM, QUARANTINE, empty_provenance
from orca_math.common.streaming import CommitBatches, StageParts
from orca_math.evaluate.core import score_samples
from orca_math.practice.core import practice_ranges
from orca_math.practice.stage import write_practice_slice


def _judgment(i: int) -> dict:
    return {"sample_id": f"s{i}", "problem_id": f"p{i}", "correct": i % 2 == 0, "method": "exact",
            "extracted_answer": str(i)}


def _bad(i: int) -> dict:
    return {"stage": "judge", "source": "samples", "row": None, "field": "problem_id", "reason": "unknown problem",
            "raw": f"s{i}"}


def problems(n: int) -> list[dict]:
    return [{"id": f"p{i:04d}", "question": f"What is {i} + 1?", "reference_solution": f"#### {i + 1}",
             "reference_answer": str(i + 1), "source": "unit", "provenance": empty_provenance(flow="seed")}
            for i in range(n)]


def test_committed_parts_read_back_as_one_dataset_with_their_counts(tmp_path):
    parts = StageParts(tmp_path, "judgments.parquet", JUDGMENT)
    parts.commit(["s0", "s1", "s2"], StageOutput([_judgment(0), _judgment(1)], [_bad(2)], 3), {"correct": 1})
    parts.commit(["s3", "s4"], StageOutput([_judgment(3), _judgment(4)], [], 2), {"correct": 1})
    parts.finish()
    assert sorted(pd.read_parquet(tmp_path / "judgments.parquet")["sample_id"]) == ["s0", "s1", "s3", "s4"]
    assert pads.dataset(tmp_path / "judgments.parquet").count_rows() == 4
    assert [q["reason"] for q in read_parquet(tmp_path / "quarantine.parquet", QUARANTINE)] == ["unknown problem"]
    s = parts.summary()
    assert (s.rows_in, s.rows_out, s.rows_quarantined, s.inputs) == (5, 4, 1, 5)
    assert s.rows_in == s.rows_out + s.rows_quarantined
    assert dict(s.quarantine_reasons) == {"unknown problem": 1} and s.stats["correct"] == 2
    assert parts.committed_ids() == {"s0", "s1", "s2", "s3", "s4"}


def test_a_part_without_its_commit_is_removed_and_its_ids_redone(tmp_path):
    parts = StageParts(tmp_path, "judgments.parquet", JUDGMENT)
    parts.commit(["s0"], StageOutput([_judgment(0)], [], 1))
    # A batch that died after writing its rows, before its commit file:
    write_parquet([_judgment(1)], JUDGMENT, tmp_path / "judgments.parquet" / "part-dead.parquet")
    (tmp_path / "judgments.parquet" / ".part-x.parquet.123.tmp").write_bytes(b"half")
    assert parts.remove_uncommitted() == 2
    assert [j["sample_id"] for j in read_parquet(tmp_path / "judgments.parquet", JUDGMENT)] == ["s0"]
    assert parts.committed_ids() == {"s0"}


class _Upper(CommitBatches):
    def process(self, rows):
        return StageOutput([_judgment(int(r["sample_id"][1:])) for r in rows], [], len(rows)), {}


def test_batches_skip_committed_ids_and_commit_the_rest(tmp_path):
    import pyarrow as pa

    parts = StageParts(tmp_path, "judgments.parquet", JUDGMENT)
    parts.commit(["s0", "s1"], StageOutput([_judgment(0), _judgment(1)], [], 2))
    udf = _Upper(parts, "sample_id")
    out = udf(pa.table({"sample_id": ["s0", "s1", "s2", "s3"]}))
    assert out.column("inputs").to_pylist() == [2]
    assert udf(pa.table({"sample_id": ["s0"]})).num_rows == 0  # all done: nothing committed
    assert sorted(j["sample_id"] for j in read_parquet(tmp_path / "judgments.parquet", JUDGMENT)) == \
        ["s0", "s1", "s2", "s3"]


@pytest.mark.parametrize("offset,limit", [(0, 3), (3, 3), (9, 3), (12, 3), (4, None), (0, 50), (7, 10)])
def test_the_practice_slice_written_in_batches_is_the_slice(tmp_path, offset, limit):
    rows = problems(10)
    # Two files: the slice crosses file boundaries and wraps around.
    write_parquet(rows[:4], PROBLEM, tmp_path / "in" / "a.parquet")
    write_parquet(rows[4:], PROBLEM, tmp_path / "in" / "b.parquet")
    n = write_practice_slice(tmp_path / "in", offset, limit, tmp_path / "slice.parquet")
    got = read_parquet(tmp_path / "slice.parquet", PROBLEM)
    expected = [p["id"] for lo, hi in practice_ranges(len(rows), offset, limit) for p in rows[lo:hi]]
    assert [p["id"] for p in got] == expected and n == len(got)


def test_canned_samples_depend_on_the_problem_not_the_batch():
    sampler = CannedSampler(VLLMEngineConfig(kind="canned"), DecodingConfig(n=4), "M1")
    batch = {"problem_id": ["a", "b", "c"], "prompt": ["qa", "qb", "qc"], "question": ["qa", "qb", " "],
             "reference_answer": ["1", "2", "3"]}
    whole = sampler(batch)
    one = sampler({k: v[1:2] for k, v in batch.items()})
    assert [t for t, p in zip(whole["text"], whole["problem_id"]) if p == "b"] == one["text"]
    assert len(whole["sample_id"]) == 12 == len(set(whole["sample_id"]))
    assert [t for t, p in zip(whole["text"], whole["problem_id"]) if p == "c"] == [""] * 4  # empty question


def test_eval_quarantines_what_the_judge_could_not_decide():
    ps = [{"id": "a", "question": "q", "reference_answer": "2", "source": "unit"},
          {"id": "b", "question": "q", "reference_answer": "4", "source": "unit"}]
    samples = [{"problem_id": p["id"], "text": "#### 2", "sample_index": 0, "completion_tokens": 2} for p in ps]

    def judge(items):
        return [{"correct": True, "method": "llm", "extracted": "2", "error": None},
                {"correct": None, "method": "llm", "extracted": "2", "error": "teacher down"}][:len(items)]

    out = score_samples(ps, samples, "m", judge=judge)
    assert [r["problem_id"] for r in out.rows] == ["a"] and out.rows[0]["method"] == "llm"
    assert out.reasons() == {"not judged: teacher down": 1}


@pytest.mark.slow
def test_the_stages_read_while_actors_hold_every_cpu(tmp_path, ray_local):
    """Engine hosts and judge replicas may reserve every CPU of a small cluster, from one stage to the
    next: a task that asked for any CPU, even a tenth, would wait for one forever (ray.data.read_parquet
    starts one to list or sample the files before it reads)."""
    import ray

    from orca_math.common.streaming import read_dataset

    path = write_parquet(problems(20), PROBLEM, tmp_path / "problems.parquet")
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        write_parquet(problems(5 + i), PROBLEM, parts / f"part-{i}.parquet")

    @ray.remote(num_cpus=1)
    class Engine:
        def ready(self) -> bool:
            return True

    engines = [Engine.remote() for _ in range(int(ray.cluster_resources()["CPU"]))]
    try:
        ray.get([e.ready.remote() for e in engines], timeout=60)
        assert ray.available_resources().get("CPU", 0) == 0

        def count(p) -> int:  # declared and read while the engines hold every CPU
            rows = read_dataset(p, ["id"]).map_batches(lambda b: b, batch_format="pyarrow", num_cpus=0)
            return sum(b.num_rows for b in rows.iter_batches(batch_size=None, batch_format="pyarrow"))

        assert ThreadPoolExecutor(1).submit(count, path).result(timeout=60) == 20
        assert ThreadPoolExecutor(1).submit(count, parts).result(timeout=60) == 5 + 6 + 7
        # A file of one row group, cut into as many blocks as a stage has batches: the unit engines are handed.
        blocks = ThreadPoolExecutor(1).submit(
            lambda: [b.num_rows for b in read_dataset(path, ["id"], blocks=4).iter_batches(
                batch_size=None, batch_format="pyarrow")]).result(timeout=60)
        assert sorted(blocks) == [5, 5, 5, 5]
    finally:
        for e in engines:
            ray.kill(e)
