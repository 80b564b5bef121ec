"""GSM8K pass@1: scoring as pure functions, and the real thing on a local Ray + vLLM."""

import json

import pandas as pd
import pytest

from orca_math.common.manifest import RunManifest
from orca_math.common.prompts import prompt_rows
from orca_math.common.records import read_parquet
from orca_math.common.schema import EVAL_RESULT
from orca_math.evaluate.core import accuracy, data_hash, score_samples
from orca_math.judge.answers import is_correct

PROBLEMS = [
    {"id": "a", "question": "1+1?", "reference_answer": "2", "source": "unit"},
    {"id": "b", "question": "2+2?", "reference_answer": "4", "source": "unit"},
    {"id": "c", "question": "3+3?", "reference_answer": "6", "source": "unit"},
]


def _sample(pid, text, idx=0):
    return {"problem_id": pid, "text": text, "sample_index": idx, "completion_tokens": 5}


def test_prompts_use_the_template():
    rows = prompt_rows(PROBLEMS[:1], "Q: {question}\nA:")
    assert rows == [{"problem_id": "a", "prompt": "Q: 1+1?\nA:"}]


def test_scores_first_sample_and_quarantines_problems_without_one():
    samples = [_sample("a", "#### 2"), _sample("a", "#### 3", 1), _sample("b", "The answer is 5")]
    out = score_samples(PROBLEMS, samples, "m")
    assert [r["correct"] for r in out.rows] == [True, False]
    assert out.quarantined[0]["reason"] == "no sample returned"
    # A problem the engine dropped counts as wrong: the denominator stays 3.
    assert accuracy(out.rows, len(PROBLEMS)) == pytest.approx(1 / 3)


def test_data_hash_depends_on_ids_and_answers_not_order():
    assert data_hash(PROBLEMS) == data_hash(PROBLEMS[::-1])
    assert data_hash(PROBLEMS) != data_hash([{**PROBLEMS[0], "reference_answer": "3"}, *PROBLEMS[1:]])


@pytest.mark.slow
def test_eval_tiny_model_on_32_gsm8k_problems(tiny_model, ray_local, gsm8k_dir, tmp_path, capsys):
    from orca_math.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tiny_model), "--data", "gsm8k-test", "--limit", "32",
                 "--out", str(out), "--config", "configs/tiny.yaml"]) == 0
    assert "pass@1 =" in capsys.readouterr().out

    summary = json.loads((out / "summary.json").read_text())
    results = read_parquet(out / "results.parquet", EVAL_RESULT)
    df = pd.read_parquet(out / "results.parquet")
    assert summary["n"] == 32 == len(results) == len(df)
    assert summary["model"] == str(tiny_model)
    assert summary["accuracy"] == pytest.approx(df["correct"].mean())
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["wall_s"] > 0
    assert summary["data_hash"] == data_hash(
        [{"id": r["problem_id"], "reference_answer": r["reference_answer"]} for r in results])
    gold = [json.loads(line) for line in (gsm8k_dir / "test.jsonl").read_text().splitlines()[:32]]
    by_question = {r["question"]: r for r in results}  # results are parts, in no set order
    assert sorted(by_question) == sorted(g["question"] for g in gold)
    for g in gold:
        r = by_question[g["question"]]
        assert r["reference_answer"] == g["answer"].split("####")[-1].strip().replace(",", "")
        assert r["correct"] == is_correct(r["completion"], r["reference_answer"])  # verdicts recomputed
    assert df["completion_tokens"].gt(0).all() and df["completion"].str.len().gt(0).all()

    entry = RunManifest(out / "manifest.json").get("eval")
    assert entry["status"] == "done" and entry["rows_in"] == 32
    assert entry["rows_restored"] == 0 and entry["rows_computed"] == 32
    assert entry["rows_in"] == entry["rows_out"] + entry["rows_quarantined"]
    assert entry["accuracy"] == summary["accuracy"]
