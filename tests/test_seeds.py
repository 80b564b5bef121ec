"""Seed readers: JSONL, Parquet and HF datasets map onto the problem schema; bad rows are quarantined."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orca_math.common.records import read_parquet, write_parquet, write_quarantine
from orca_math.common.schema import PROBLEM, QUARANTINE
from orca_math.seeds import read_problems
from orca_math.seeds.readers import problem_from_row, resolve_data_spec

GOOD = {"question": "Ann has 3 cats and gets 4 more. How many cats?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"}


def _write_jsonl(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def bad_corpus(tmp_path):
    j = lambda obj: json.dumps(obj).encode()  # noqa: E731
    lines = [
        j(GOOD),                                                       # 0 ok
        j({"answer": "#### 5"}),                                       # 1 missing question
        j({"question": 17, "answer": "#### 5"}),                       # 2 wrong type
        j({"question": "   ", "answer": "#### 5"}),                    # 3 empty question
        j({"question": "How many?", "answer": "It is #### five"}),     # 4 non-numeric answer
        b'{"question": "caf\xe9 \xff bad bytes", "answer": "#### 1"}', # 5 invalid UTF-8
        b'{"question": "truncated',                                    # 6 invalid JSON
        j({"question": "How many?"}),                                  # 7 missing answer
        j(GOOD),                                                       # 8 duplicate of 0
        j({"question": "Bob has $1,200 and spends half. How much is left?", "answer": "1200/2 = 600\n#### 600"}),  # 9 ok
        j(["not", "an", "object"]),                                    # 10 not an object
        j({"question": "What is 3/4 of 8?", "reference_answer": 6}),   # 11 ok, problem-shaped
    ]
    return _write_jsonl(tmp_path / "bad.jsonl", lines)


def test_bad_rows_are_quarantined_with_reasons_and_counts_add_up(bad_corpus):
    out = read_problems(str(bad_corpus))
    assert out.rows_in == 12
    assert len(out.rows) == 3 and len(out.quarantined) == 9
    assert out.rows_in == len(out.rows) + len(out.quarantined)
    by_row = {q["row"]: q for q in out.quarantined}
    assert (by_row[1]["field"], by_row[1]["reason"]) == ("question", "field is missing")
    assert by_row[2]["field"] == "question" and "must be a string" in by_row[2]["reason"]
    assert (by_row[3]["field"], by_row[3]["reason"]) == ("question", "is empty")
    assert by_row[4]["field"] == "answer" and "not a number" in by_row[4]["reason"]
    assert "invalid UTF-8" in by_row[5]["reason"]
    assert "invalid JSON" in by_row[6]["reason"]
    assert by_row[7]["field"] == "answer"
    assert by_row[8]["reason"] == "duplicate"
    assert "must be an object" in by_row[10]["reason"]
    assert all(q["source"] == str(bad_corpus) for q in out.quarantined)


def test_quarantine_and_problems_write_with_their_schemas(bad_corpus, tmp_path):
    out = read_problems(str(bad_corpus))
    write_parquet(out.rows, PROBLEM, tmp_path / "p.parquet")
    write_quarantine(out.quarantined, tmp_path / "q.parquet")
    assert len(read_parquet(tmp_path / "q.parquet", QUARANTINE)) == 9
    problems = read_parquet(tmp_path / "p.parquet", PROBLEM)
    assert [p["reference_answer"] for p in problems] == ["7", "600", "6"]


def test_gsm8k_answer_maps_onto_problem_and_calculator_notes_are_stripped():
    p = problem_from_row(GOOD, "f.jsonl", 0, "gsm8k-train")
    assert p["reference_answer"] == "7"
    assert "<<" not in p["reference_solution"] and p["reference_solution"].endswith("#### 7")
    assert p["provenance"]["origin"] == "f.jsonl:0" and p["provenance"]["flow"] == "seed"


def test_parquet_seeds_read_like_jsonl(tmp_path):
    pq.write_table(pa.Table.from_pylist([GOOD, {"question": "", "answer": "#### 1"}]), tmp_path / "s.parquet")
    out = read_problems(str(tmp_path / "s.parquet"))
    assert (len(out.rows), len(out.quarantined)) == (1, 1)


def test_saved_hf_dataset_reads(tmp_path):
    import datasets

    datasets.Dataset.from_list([GOOD]).save_to_disk(str(tmp_path / "ds"))
    out = read_problems(str(tmp_path / "ds"))
    assert out.rows[0]["reference_answer"] == "7"


def test_limit_counts_input_rows(bad_corpus):
    out = read_problems(str(bad_corpus), limit=4)
    assert out.rows_in == 4 and len(out.rows) + len(out.quarantined) == 4


def test_gsm8k_test_resolves_to_the_local_copy(gsm8k_dir):
    assert resolve_data_spec("gsm8k-test") == str(gsm8k_dir / "test.jsonl")
    out = read_problems("gsm8k-test")
    assert len(out.rows) == 1319 and not out.quarantined
    assert out.rows[0]["source"] == "gsm8k-test"


def test_unknown_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_problems(str(tmp_path / "nope.txt"))


def test_problems_stream_to_parquet_a_chunk_at_a_time_with_the_same_rows_and_quarantine(bad_corpus, tmp_path):
    """What eval reads its set with: the rows read_problems keeps, written in chunks, counted."""
    from orca_math.seeds.readers import write_problems

    whole = read_problems(str(bad_corpus))
    written, read = write_problems(str(bad_corpus), tmp_path / "problems.parquet", chunk_rows=2)
    assert written == len(whole.rows) and read.rows == []
    assert read_parquet(tmp_path / "problems.parquet", PROBLEM) == whole.rows
    assert read.quarantined == whole.quarantined and read.rows_in == whole.rows_in
    assert pq.ParquetFile(tmp_path / "problems.parquet").num_row_groups > 1  # written as it was read
