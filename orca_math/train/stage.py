"""The training stages: ``sft_stage``, ``preference_stage`` and ``control_stage`` (the recipe's
equal-compute SFT control), and ``run_sft`` / ``run_preference`` (a stage on its own, for the commands).

Each one reads its input (the project's records, or your own data in one of TRL's dataset formats:
JSONL, Parquet or a ``datasets`` folder; see ``core.py``), builds TRL rows (bad rows quarantined,
with reasons), trains on Ray Train, and leaves ``out_dir`` as an HF model folder (weights, tokenizer, chat
template) next to ``quarantine.parquet``, ``train_log.json`` and ``loss.png``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from orca_math.common.manifest import RunManifest
from orca_math.common.records import RowCountError, StageOutput, parquet_files, read_table, write_quarantine
from orca_math.common.runner import Stage, StageContext, content_hash, run_stage
from orca_math.common.schema import KTO_EXAMPLE, PREFERENCE_PAIR
from orca_math.seeds import read_problems, resolve_data_spec
from orca_math.seeds.readers import column_names, iter_rows, source_name
from orca_math.train.config import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig, TrainConfigBase
from orca_math.train.core import (
    chat_renderer,
    dpo_rows,
    is_project_format,
    kto_rows,
    prompt_completion_rows,
    rft_rows,
    sft_rows,
    tokenizer_counter,
    trl_columns,
    trl_records,
)
from orca_math.train.curves import final_metrics, loss_curve, plot_curves
from orca_math.train.trainers import TRL_COLUMNS, load_tokenizer

log = logging.getLogger(__name__)


class TrainDataError(ValueError):
    """Training input that leaves nothing to train on; names the data and the quarantine reasons."""


def model_ref(model: str | Path) -> str:
    """A local model folder as an absolute path (Ray workers run elsewhere), an HF id unchanged."""
    p = Path(model)
    return str(p.resolve()) if p.exists() else str(model)


def read_records(path: str | Path, schema: pa.Schema, limit: int | None = None) -> list[tuple[str, int, dict]]:
    """(file, row, record) for every row of a Parquet file or folder with ``schema``."""
    out: list[tuple[str, int, dict]] = []
    for f in parquet_files(path):
        for i, rec in enumerate(read_table(f, schema).to_pylist()):
            if limit is not None and len(out) >= limit:
                return out
            out.append((str(f), i, rec))
    return out


def _problem_source(problem: dict, spec: str, index: int) -> tuple[str, int]:
    origin = (problem.get("provenance") or {}).get("origin") or ""
    source, _, row = origin.rpartition(":")
    return (source, int(row)) if source and row.isdigit() else (spec, index)


def _train_and_record(
    algo: str,
    c: StageContext,
    model: str,
    data: str,
    built: StageOutput,
    read_quarantined: list[dict],
    rows_in: int,
    cfg: TrainConfigBase,
) -> dict:
    """Write the quarantine, train on Ray Train, and return the stage's manifest fields."""
    from orca_math.train.ray_train import fit_on_ray

    out_dir = c.out
    quarantined = read_quarantined + built.quarantined
    reasons = dict(Counter(q["reason"] for q in quarantined))
    write_quarantine(quarantined, out_dir / "quarantine.parquet")
    counts = {"rows_in": rows_in, "rows_out": len(built.rows), "rows_quarantined": len(quarantined),
              "quarantine_reasons": reasons}
    if rows_in != counts["rows_out"] + counts["rows_quarantined"]:
        raise RowCountError(f"{c.name}: rows in != rows out + quarantined: {counts}")
    c.manifest.update(c.name, **counts)  # visible while training runs, and kept if it fails
    if not built.rows:
        raise TrainDataError(f"{data}: no trainable rows ({len(quarantined)} quarantined: {reasons}); "
                             f"see {out_dir / 'quarantine.parquet'}")
    log.info("%s: %d training rows from %s, %d quarantined %s", c.name, len(built.rows), data, len(quarantined),
             reasons)
    train_log = fit_on_ray(algo, model, trl_columns(built.rows, TRL_COLUMNS[algo]), cfg, out_dir, resume=c.resume,
                           run_name=c.name)
    title = c.name if c.name == algo else f"{c.name} ({algo})"
    plot = plot_curves(train_log["log_history"], out_dir / "loss.png", f"{title}, {len(built.rows)} rows")
    metrics = final_metrics(train_log)
    if algo == "kto":
        labels = Counter(r["label"] for r in built.rows)
        metrics.update(desirable=labels[True], undesirable=labels[False])
    log.info("%s: done, step %d, loss %s -> %s, model in %s", c.name, metrics["global_step"],
             metrics["first_loss"], metrics["last_loss"], out_dir)
    return {
        **counts,
        "outputs": {"model": str(out_dir), "quarantine": str(out_dir / "quarantine.parquet"),
                    "loss_plot": str(plot), "train_log": str(out_dir / "train_log.json")},
        "loss_curve": loss_curve(train_log["log_history"]),
        "metrics": metrics,
        # What `auto` chose on the worker (bf16 or fp32, attention kernel) and why: its CPU/GPU.
        "precision": train_log.get("precision"),
    }


def read_trl_dataset(spec: str, algo: str, tokenizer, limit: int | None, stage: str) -> StageOutput:
    """Your own data in a TRL dataset format (JSONL, Parquet, a ``datasets`` folder, ``hf:ID``) ->
    (file, row, record) rows in the project's records for ``algo``, bad rows quarantined."""
    return trl_records(iter_rows(spec), algo, source_name(spec), chat_renderer(tokenizer), stage, limit)


def sft_stage(cfg: SFTTrainConfig, out_dir: str | Path, *, model: str | Path, data: str | Path,
              name: str = "sft") -> Stage:
    """SFT ``model`` on ``data`` -> ``out_dir``: problems (problem Parquet file/folder, GSM8K JSONL,
    gsm8k-train...) or your own TRL-format SFT data (``prompt``/``completion`` or ``messages``).

    A problem's completion is its ``reference_solution``; the loss covers only the completion's
    tokens. A rerun after a crash, or with a larger ``max_steps``, continues from the last Ray Train
    checkpoint in ``out_dir``. The data's content is one of the stage's inputs: other data, a new run.
    """
    model, spec = model_ref(model), resolve_data_spec(str(data))

    def train(c: StageContext) -> dict:
        tokenizer = load_tokenizer(model)
        count = tokenizer_counter(tokenizer)
        if not is_project_format(column_names(spec), "sft"):
            read = read_trl_dataset(spec, "sft", tokenizer, cfg.limit, c.name)
            built = prompt_completion_rows(read.rows, count, cfg.max_prompt_length, cfg.max_length, stage=c.name)
            return _train_and_record("sft", c, model, spec, built, read.quarantined, read.rows_in, cfg)
        read = read_problems(spec, limit=cfg.limit, stage=c.name)
        problems = [(*_problem_source(p, spec, i), p) for i, p in enumerate(read.rows)]
        built = sft_rows(problems, cfg.prompt_template, count, cfg.max_prompt_length, cfg.max_length, stage=c.name)
        return _train_and_record("sft", c, model, spec, built, read.quarantined, read.rows_in, cfg)

    return Stage(name, cfg, train, out=Path(out_dir),
                 inputs={"model": model, "data": spec, "data_content": lambda: content_hash(spec)})


def preference_stage(cfg: DPOTrainConfig | KTOTrainConfig | SFTTrainConfig, out_dir: str | Path, *,
                     algo: Literal["dpo", "kto", "rft"], model: str | Path, data: str | Path,
                     name: str | None = None) -> Stage:
    """One round's training from ``model`` -> ``out_dir``: DPO on preference pairs, KTO on KTO
    examples, or rejection-sampling fine-tuning (``rft``: SFT on positive KTO examples). ``data`` is
    the prefs stage's Parquet, or your own data in TRL's formats: ``prompt``/``chosen``/``rejected``
    or ``chosen``/``rejected`` (dpo), ``prompt``/``completion``/``label`` (kto, rft).

    The frozen reference model of DPO/KTO is ``model`` itself (the round's starting model).
    """
    expected = {"dpo": DPOTrainConfig, "kto": KTOTrainConfig, "rft": SFTTrainConfig}.get(algo)
    if expected is None:
        raise ValueError(f"unknown round algo {algo!r}: use dpo, kto or rft")
    if not isinstance(cfg, expected):
        raise TypeError(f"{algo} needs a {expected.__name__}, got {type(cfg).__name__}")
    model, data = model_ref(model), str(data)

    def train(c: StageContext) -> dict:
        tokenizer = load_tokenizer(model)
        count = tokenizer_counter(tokenizer)
        if is_project_format(column_names(data), algo):
            records, read_quarantined = read_records(data, PREFERENCE_PAIR if algo == "dpo" else KTO_EXAMPLE,
                                                     cfg.limit), []
            rows_in = len(records)
        else:
            read = read_trl_dataset(data, algo, tokenizer, cfg.limit, c.name)
            records, read_quarantined, rows_in = read.rows, read.quarantined, read.rows_in
        if algo == "dpo":
            built = dpo_rows(records, count, cfg.max_prompt_length, cfg.max_length, stage=c.name)
        else:
            build = kto_rows if algo == "kto" else rft_rows
            built = build(records, count, cfg.max_prompt_length, cfg.max_length, seed=cfg.seed, stage=c.name)
        return _train_and_record("sft" if algo == "rft" else algo, c, model, data, built, read_quarantined, rows_in,
                                 cfg)

    return Stage(name or algo, cfg, train, out=Path(out_dir),
                 inputs={"model": model, "data": data, "data_content": lambda: content_hash(data)})


def training_sequences(entry: dict, cfg: TrainConfigBase, algo: str) -> int:
    """Sequences a finished training stage pushed through the policy (forward + backward).

    A DPO example is two sequences (chosen and rejected), a KTO one too (the completion and the
    mismatched completion of its KL estimate); an SFT or RFT example is one.
    """
    per_step = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * cfg.scaling.num_workers
    return entry["metrics"]["global_step"] * per_step * (1 if algo in ("sft", "rft") else 2)


def control_stage(cfg: SFTTrainConfig, out_dir: str | Path, *, model: str | Path, data: list[Path],
                  rounds: list[str], rounds_cfg: TrainConfigBase, algo: str, merged: Path,
                  name: str = "sft-control") -> Stage:
    """The equal-compute control: ``model`` trained further with plain SFT (``cfg``) on ``data`` for as
    many tokens (or sequences) as the training stages ``rounds`` (``algo`` with ``rounds_cfg``) used.

    Its budget is read from the rounds' manifest entries when it runs. Several ``data`` files (the
    problems each round practiced) are first written as one set to ``merged``.
    """
    import pyarrow.parquet as pq

    from orca_math.common.records import atomic_path
    from orca_math.common.schema import PROBLEM

    model = model_ref(model)
    sources = ",".join(map(str, data))

    def train(c: StageContext) -> dict:
        entries = [c.manifest.get(r) for r in rounds]
        spent = sum(training_sequences(e, rounds_cfg, algo) for e in entries)
        per_step = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * cfg.scaling.num_workers
        # Equal compute is equal tokens where the rounds counted theirs (SFT-style rounds): the
        # rounds' positives are shorter than the SFT set's problems (measured: the same 266 x 16
        # sequences held 1.2x the rounds' tokens), so as many sequences would give the control more.
        # Steps then only bound it (twice the sequences' steps: the tokens run out first, and the
        # schedule is fitted to them). Another data order than M1's SFT, so the extra steps see
        # mostly problems M1 has not. No time cap: the rounds already kept to theirs, and a control cut
        # short by the clock (measured: 164 of 257 steps on a CPU where its steps were slower) would
        # not be the equal-compute arm it is reported as.
        counted = [e["metrics"].get("num_input_tokens_seen") for e in entries]
        tokens = sum(counted) if algo == "rft" and all(counted) else None
        steps = max(1, math.ceil(spent / per_step))
        control_cfg = cfg.model_copy(update={"max_steps": 2 * steps if tokens else steps, "max_tokens": tokens,
                                             "seed": cfg.seed + 1, "max_time_s": None})
        problems = data[0]
        if len(data) > 1:  # the rounds' practiced problems, one file per round: the control reads them as one set
            problems = merged
            merged.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(merged) as tmp, pq.ParquetWriter(tmp, PROBLEM) as writer:  # a batch in memory at a time
                for batch in (b for path in data for b in pq.ParquetFile(path).iter_batches(batch_size=8192)):
                    writer.write_batch(batch)
        trained = sft_stage(control_cfg, c.out, model=model, data=problems, name=c.name).run(c)
        return {**trained, "control_sequences": spent, "control_tokens": tokens,
                "config": control_cfg.model_dump(mode="json")}

    return Stage(name, cfg, train, out=Path(out_dir),
                 inputs={"model": model, "data": sources,
                         "data_content": lambda: ",".join(content_hash(p) for p in data)})


def run_sft(model: str | Path, data: str | Path, out_dir: str | Path, cfg: SFTTrainConfig) -> Path:
    """:func:`sft_stage` on its own (manifest in ``out_dir``): skipped if done, resumed if interrupted."""
    run_stage(sft_stage(cfg, out_dir, model=model, data=data))
    return Path(out_dir)


def run_preference(algo: Literal["dpo", "kto", "rft"], model: str | Path, data: str | Path, out_dir: str | Path,
                   cfg: DPOTrainConfig | KTOTrainConfig | SFTTrainConfig) -> Path:
    """:func:`preference_stage` on its own (manifest in ``out_dir``): skipped if done, resumed if interrupted."""
    run_stage(preference_stage(cfg, out_dir, algo=algo, model=model, data=data))
    return Path(out_dir)


def train_summary(out_dir: str | Path, stage: str, manifest: RunManifest | None = None) -> dict[str, Any]:
    """The manifest entry a training stage left (counts, metrics, loss curve, outputs)."""
    manifest = manifest or RunManifest(Path(out_dir) / "manifest.json")
    entry = manifest.get(stage)
    if entry is None:
        raise KeyError(f"{stage}: no such stage in {manifest.path}")
    return entry
