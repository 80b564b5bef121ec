"""The Arrow schemas of every record kind that crosses a stage boundary, defined once.

Stages write Parquet with exactly these schemas, so any stage's output reads back with
``pandas.read_parquet`` and any stage can be rerun alone on another's output.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

PROVENANCE = pa.struct(
    [
        pa.field("origin", pa.string()),  # file:row or dataset name the record came from
        pa.field("seed_id", pa.string()),  # problem id this one was derived from (None for seeds)
        pa.field("flow", pa.string()),  # seed | ask_me_anything | suggester_editor | procedural ...
        pa.field("round", pa.int32()),
        pa.field("teacher_model", pa.string()),
        pa.field("prompt_version", pa.string()),
    ]
)

PROBLEM = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("reference_solution", pa.string()),  # step-by-step text ending in "#### N"
        pa.field("reference_answer", pa.string(), nullable=False),  # normalized final answer
        pa.field("source", pa.string(), nullable=False),  # dataset name, e.g. gsm8k-train
        pa.field("provenance", PROVENANCE),
    ]
)

SAMPLE = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("prompt_tokens", pa.int32()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("finish_reason", pa.string()),
    ]
)

JUDGMENT = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("method", pa.string(), nullable=False),  # exact | llm
        pa.field("extracted_answer", pa.string()),
    ]
)

PREFERENCE_PAIR = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("chosen", pa.string(), nullable=False),
        pa.field("rejected", pa.string(), nullable=False),
        pa.field("chosen_source", pa.string(), nullable=False),  # student | teacher
        pa.field("rejected_source", pa.string(), nullable=False),  # student | borrowed
        pa.field("round", pa.int32()),
    ]
)

KTO_EXAMPLE = pa.schema(
    [
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("completion", pa.string(), nullable=False),
        pa.field("label", pa.bool_(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # student | teacher | borrowed
        pa.field("round", pa.int32()),
    ]
)

EVAL_RESULT = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("reference_answer", pa.string(), nullable=False),
        pa.field("completion", pa.string(), nullable=False),
        pa.field("extracted_answer", pa.string()),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("completion_tokens", pa.int32()),
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # file (or dataset) the row came from
        pa.field("row", pa.int64()),  # 0-based row/line number in that source
        pa.field("field", pa.string()),  # offending field, None when the whole row is bad
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string()),  # the row as text (truncated), for a human to look at
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "problem": PROBLEM,
    "sample": SAMPLE,
    "judgment": JUDGMENT,
    "preference_pair": PREFERENCE_PAIR,
    "kto_example": KTO_EXAMPLE,
    "eval_result": EVAL_RESULT,
    "quarantine": QUARANTINE,
}


def stable_id(*parts: object) -> str:
    """Deterministic id from its parts: reruns and resumes produce the same ids."""
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return h.hexdigest()[:16]


def empty_provenance(**fields: object) -> dict:
    """A provenance struct with every key present (Arrow structs need all fields)."""
    prov = {f.name: None for f in PROVENANCE}
    prov.update(fields)
    return prov
