"""Schemas round-trip through Parquet; bad records are named by file, row and field."""

import pandas as pd
import pyarrow as pa
import pytest

from orca_math.common import schema
from orca_math.common.records import RecordError, RowCountError, StageOutput, read_parquet, read_table, write_parquet

EXAMPLES = {
    "problem": {
        "id": "p1", "question": "Tom has 3 apples and buys 2. How many?", "reference_solution": "3 + 2 = 5\n#### 5",
        "reference_answer": "5", "source": "unit",
        "provenance": schema.empty_provenance(origin="x.jsonl:0", flow="seed", round=0),
    },
    "sample": {
        "sample_id": "s1", "problem_id": "p1", "model": "m", "sample_index": 0, "prompt": "USER:\n...",
        "text": "#### 5", "prompt_tokens": 10, "completion_tokens": 3, "finish_reason": "stop",
    },
    "judgment": {"sample_id": "s1", "problem_id": "p1", "correct": True, "method": "exact", "extracted_answer": "5"},
    "preference_pair": {
        "pair_id": "d1", "problem_id": "p1", "prompt": "q", "chosen": "#### 5", "rejected": "#### 6",
        "chosen_source": "teacher", "rejected_source": "student", "round": 1,
    },
    "kto_example": {"example_id": "k1", "problem_id": "p1", "prompt": "q", "completion": "#### 5", "label": True,
                    "source": "student", "round": 1},
    "eval_result": {
        "problem_id": "p1", "model": "m", "question": "q", "reference_answer": "5", "completion": "#### 5",
        "extracted_answer": "5", "correct": True, "method": "exact", "completion_tokens": 3,
    },
    "quarantine": {"stage": "seeds", "source": "x.jsonl", "row": 3, "field": "question", "reason": "is empty", "raw": "{}"},
}


@pytest.mark.parametrize("kind", sorted(schema.SCHEMAS))
def test_every_record_kind_round_trips_through_parquet(tmp_path, kind):
    path = write_parquet([EXAMPLES[kind]], schema.SCHEMAS[kind], tmp_path / f"{kind}.parquet")
    assert read_parquet(path, schema.SCHEMAS[kind]) == [EXAMPLES[kind]]
    # Any stage's output reads back with plain pandas.
    df = pd.read_parquet(path)
    assert list(df.columns) == schema.SCHEMAS[kind].names
    assert len(df) == 1


def test_wrong_type_names_row_and_field(tmp_path):
    rows = [EXAMPLES["sample"], {**EXAMPLES["sample"], "sample_index": "zero"}]
    with pytest.raises(RecordError) as e:
        write_parquet(rows, schema.SAMPLE, tmp_path / "s.parquet")
    assert e.value.row == 1 and e.value.field == "sample_index"
    assert "s.parquet" in str(e.value)
    assert not (tmp_path / "s.parquet").exists()


def test_missing_required_field_names_row_and_field(tmp_path):
    rows = [EXAMPLES["judgment"], {**EXAMPLES["judgment"], "correct": None}]
    with pytest.raises(RecordError) as e:
        write_parquet(rows, schema.JUDGMENT, tmp_path / "j.parquet")
    assert (e.value.row, e.value.field) == (1, "correct")


def test_reading_a_file_of_another_schema_names_the_missing_column(tmp_path):
    path = write_parquet([EXAMPLES["judgment"]], schema.JUDGMENT, tmp_path / "j.parquet")
    with pytest.raises(RecordError) as e:
        read_table(path, schema.SAMPLE)
    assert e.value.field in schema.SAMPLE.names and "j.parquet" in str(e.value)


def test_folder_of_parts_reads_as_one_table(tmp_path):
    for i in range(3):
        write_parquet([{**EXAMPLES["judgment"], "sample_id": f"s{i}"}], schema.JUDGMENT, tmp_path / f"part-{i}.parquet")
    assert [r["sample_id"] for r in read_parquet(tmp_path, schema.JUDGMENT)] == ["s0", "s1", "s2"]


def test_row_count_mismatch_is_an_error():
    with pytest.raises(RowCountError):
        StageOutput(rows=[{}], quarantined=[], rows_in=2).check_counts()


def test_stable_ids_are_deterministic():
    assert schema.stable_id("gsm8k", "q") == schema.stable_id("gsm8k", "q") != schema.stable_id("gsm8k", "q2")


def test_schemas_are_arrow_schemas():
    assert all(isinstance(s, pa.Schema) for s in schema.SCHEMAS.values())
