"""Read problems from JSONL, Parquet, or HF ``datasets`` into the problem schema.

Rows may be GSM8K-shaped (``question``, ``answer`` ending in ``#### N``) or problem-shaped
(``question``, ``reference_answer``, optional ``reference_solution``/``id``/``source``). A row that
cannot become a problem is quarantined with its file, row, field and reason; exact duplicate
questions are quarantined too, so ``rows_in == rows_out + rows_quarantined``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from orca_math.common.config import REPO_ROOT
from orca_math.common.records import RecordError, RowCountError, StageOutput, parquet_files, parse_rows, quarantine_row
from orca_math.common.schema import empty_provenance, stable_id
from orca_math.judge.answers import normalize_number

GSM8K_HF_ID = "openai/gsm8k"
_CALCULATOR = re.compile(r"<<[^<>]*>>")
_ANSWER_MARK = re.compile(r"####\s*(.+?)\s*$", re.S)


def gsm8k_dirs() -> list[Path]:
    """Where a local GSM8K copy may live: $ORCA_MATH_GSM8K_DIR, then ../shared/data/gsm8k."""
    dirs = []
    if os.environ.get("ORCA_MATH_GSM8K_DIR"):
        dirs.append(Path(os.environ["ORCA_MATH_GSM8K_DIR"]))
    dirs += [Path.cwd().parent / "shared/data/gsm8k", REPO_ROOT.parent / "shared/data/gsm8k"]
    return dirs


def resolve_data_spec(spec: str) -> str:
    """``gsm8k-train``/``gsm8k-test`` -> a local JSONL when present, else ``hf:openai/gsm8k:main:SPLIT``."""
    if spec in ("gsm8k-train", "gsm8k-test"):
        split = spec.split("-", 1)[1]
        for d in gsm8k_dirs():
            if (d / f"{split}.jsonl").exists():
                return str(d / f"{split}.jsonl")
        return f"hf:{GSM8K_HF_ID}:main:{split}"
    return spec


def source_name(spec: str) -> str:
    """A short dataset name for the ``source`` column (``gsm8k-test``, ``my_seeds``)."""
    if spec.startswith("hf:"):
        parts = spec[3:].split(":")
        return f"{parts[0].split('/')[-1]}-{parts[-1]}" if len(parts) > 1 else parts[0].split("/")[-1]
    p = Path(spec)
    if p.parent.name == "gsm8k" and p.stem in ("train", "test"):
        return f"gsm8k-{p.stem}"
    return p.stem or p.name


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (row, parsed object or raw text, error) per non-empty line."""
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield i, line[:200].decode("utf-8", "replace"), f"invalid UTF-8 at byte {e.start}"
                continue
            try:
                yield i, json.loads(text), None
            except json.JSONDecodeError as e:
                yield i, text, f"invalid JSON: {e.msg}"


def iter_rows(spec: str) -> Iterator[tuple[str, int, Any, str | None]]:
    """Yield (source file, row index, row, read error) for any supported input: JSONL, Parquet file
    or folder, a ``datasets`` ``save_to_disk`` folder, or ``hf:ID[:CONFIG]:SPLIT``."""
    if spec.startswith("hf:"):
        import datasets  # real hub loading; needs network access to the HF hub

        name, *rest = spec[3:].split(":")
        config, split = rest if len(rest) == 2 else (None, rest[0] if rest else "train")
        ds = datasets.load_dataset(name, config, split=split)
        for i, row in enumerate(ds):
            yield spec, i, row, None
        return
    p = Path(spec)
    if p.is_dir() and (p / "dataset_info.json").exists():  # datasets.save_to_disk folder
        import datasets

        for i, row in enumerate(datasets.load_from_disk(str(p))):
            yield str(p), i, row, None
    elif p.suffix in (".jsonl", ".json") and p.is_file():
        for i, row, err in _iter_jsonl(p):
            yield str(p), i, row, err
    elif p.suffix == ".parquet" or p.is_dir():
        import pyarrow.parquet as pq

        for f in parquet_files(p):
            i = 0
            for batch in pq.ParquetFile(f).iter_batches(batch_size=10_000):  # a batch in memory, not the file
                for row in batch.to_pylist():
                    yield str(f), i, row, None
                    i += 1
    else:
        raise FileNotFoundError(f"{spec}: not a JSONL/Parquet file, Parquet folder, saved HF dataset or hf:ID")


def column_names(spec: str) -> set[str]:
    """The columns of ``spec``: a Parquet file's or folder's schema (rows or not), else the keys of
    its first readable row (none when it has no such row)."""
    p = Path(spec)
    if not spec.startswith("hf:") and (p.suffix == ".parquet" or (p.is_dir() and not (p / "dataset_info.json").exists())):
        import pyarrow.parquet as pq

        files = parquet_files(p)
        return set(pq.read_schema(files[0]).names) if files else set()
    for _, _, row, err in iter_rows(spec):
        if err is None and isinstance(row, dict):
            return set(row)
    return set()


def _answer_from_gsm8k(answer: Any, source: str, row: int) -> tuple[str, str]:
    """GSM8K ``answer`` -> (reference solution without calculator notes, normalized answer)."""
    if not isinstance(answer, str):
        raise RecordError(source, row, "answer", f"must be a string, got {type(answer).__name__}")
    m = _ANSWER_MARK.search(answer)
    if not m:
        raise RecordError(source, row, "answer", "no '#### <answer>' line")
    final = m.group(1).strip()
    value = normalize_number(final)
    if value is None or not re.fullmatch(r"[-$\d.,/\s]+%?", final):
        raise RecordError(source, row, "answer", f"final answer is not a number: {final[:40]!r}")
    solution = _CALCULATOR.sub("", answer[: m.start()]).rstrip() + f"\n#### {value}"
    return solution, value


def problem_from_row(row: Any, source: str, row_index: int, dataset: str) -> dict:
    """One raw row -> a problem record, or RecordError naming the bad field."""
    if not isinstance(row, dict):
        raise RecordError(source, row_index, None, f"row must be an object, got {type(row).__name__}")
    question = row.get("question")
    if question is None:
        raise RecordError(source, row_index, "question", "field is missing")
    if not isinstance(question, str):
        raise RecordError(source, row_index, "question", f"must be a string, got {type(question).__name__}")
    question = question.strip()
    if not question:
        raise RecordError(source, row_index, "question", "is empty")
    if "reference_answer" in row:
        ans = row["reference_answer"]
        if not isinstance(ans, (str, int, float)) or isinstance(ans, bool):
            raise RecordError(source, row_index, "reference_answer", f"must be a string or number, got {type(ans).__name__}")
        value = normalize_number(str(ans))
        if value is None:
            raise RecordError(source, row_index, "reference_answer", f"not a number: {str(ans)[:40]!r}")
        solution = row.get("reference_solution")
        if solution is not None and not isinstance(solution, str):
            raise RecordError(source, row_index, "reference_solution", "must be a string")
    elif "answer" in row:
        solution, value = _answer_from_gsm8k(row["answer"], source, row_index)
    else:
        raise RecordError(source, row_index, "answer", "field is missing (need 'answer' or 'reference_answer')")
    src = row.get("source") if isinstance(row.get("source"), str) else dataset
    pid = row.get("id") if isinstance(row.get("id"), str) and row.get("id") else stable_id(src, question)
    prov = row.get("provenance") if isinstance(row.get("provenance"), dict) else None
    provenance = empty_provenance(**(prov or {}))
    provenance["origin"] = provenance.get("origin") or f"{source}:{row_index}"
    provenance["flow"] = provenance.get("flow") or "seed"
    return {
        "id": pid,
        "question": question,
        "reference_solution": solution,
        "reference_answer": value,
        "source": src,
        "provenance": provenance,
    }


def iter_problems(spec: str, limit: int | None = None, stage: str = "seeds",
                  out: StageOutput | None = None) -> Iterator[dict]:
    """The problems of up to ``limit`` input rows of ``spec``, one at a time; bad or duplicate rows
    go to ``out.quarantined`` and every row read counts in ``out.rows_in`` (rows are not kept)."""
    spec = resolve_data_spec(spec)
    dataset = source_name(spec)
    out = out if out is not None else StageOutput()
    seen: set[str] = set()
    parsed = parse_rows(iter_rows(spec), lambda row, source, i: problem_from_row(row, source, i, dataset), out,
                        stage, limit)
    for source, i, row, problem in parsed:
        if problem["id"] in seen:
            out.quarantined.append(quarantine_row(stage, source, i, "question", "duplicate", row))
            continue
        seen.add(problem["id"])
        yield problem


def read_problems(spec: str, limit: int | None = None, stage: str = "seeds") -> StageOutput:
    """Read up to ``limit`` input rows from ``spec`` into problems; bad or duplicate rows are quarantined."""
    out = StageOutput()
    out.rows = list(iter_problems(spec, limit, stage, out))
    return out.check_counts()


def write_problems(spec: str, path: str | Path, limit: int | None = None, stage: str = "seeds",
                   chunk_rows: int = 10_000) -> tuple[int, StageOutput]:
    """:func:`read_problems` streamed into the Parquet file ``path``, ``chunk_rows`` at a time, so
    memory holds one chunk and the ids seen, not the set; returns (rows written, the counts and
    the quarantined rows). The file appears whole or not at all."""
    import pyarrow.parquet as pq

    from orca_math.common.records import atomic_path, to_table
    from orca_math.common.schema import PROBLEM

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out, written, chunk = StageOutput(), 0, []
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, PROBLEM) as w:
        for problem in iter_problems(spec, limit, stage, out):
            chunk.append(problem)
            if len(chunk) >= chunk_rows:
                w.write_table(to_table(chunk, PROBLEM, str(path)))
                written, chunk = written + len(chunk), []
        w.write_table(to_table(chunk, PROBLEM, str(path)))
        written += len(chunk)
    if out.rows_in != written + len(out.quarantined):
        raise RowCountError(f"{spec}: rows in ({out.rows_in}) != written ({written}) + quarantined "
                            f"({len(out.quarantined)})")
    return written, out
