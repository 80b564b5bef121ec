"""Your own data: ``sft`` and ``train-pref`` read the dataset formats TRL documents, from JSONL,
Parquet or a ``datasets`` folder, into the project's records, with bad rows quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orca_math.common.config import load_stage_config
from orca_math.common.prompts import render_prompt
from orca_math.common.records import read_parquet, write_parquet
from orca_math.common.schema import PREFERENCE_PAIR, QUARANTINE, stable_id
from orca_math.seeds.readers import column_names, source_name
from orca_math.train.config import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig
from orca_math.train.core import (
    DATASET_SOURCE,
    EMPTY_PROMPT,
    is_project_format,
    kto_rows,
    prompt_completion_rows,
    tokenizer_counter,
)
from orca_math.train.stage import read_trl_dataset
from orca_math.train.trainers import load_tokenizer

Q = "What is 2 + 2?"
PROMPT = render_prompt(Q)  # the student's format: "USER:\n...\n\nASSISTANT:\n"
USER = [{"role": "user", "content": Q}]


def say(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return load_tokenizer(str(tiny_model))


def write(rows: list[dict], kind: str, d: Path) -> Path:
    """``rows`` as JSONL, Parquet or a ``datasets.save_to_disk`` folder."""
    d.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        path = d / "data.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif kind == "parquet":
        path = d / "data.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import datasets

        path = d / "data"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def read(tokenizer, path: Path, algo: str):
    out = read_trl_dataset(str(path), algo, tokenizer, None, algo)
    return [rec for _, _, rec in out.rows], out


def read_each(tokenizer, tables: list[list[dict]], kind: str, d: Path, algo: str) -> list[dict]:
    """Each table in its own file (a Parquet column has one type: text or messages), read in turn."""
    records = []
    for i, rows in enumerate(tables):
        got, out = read(tokenizer, write(rows, kind, d / str(i)), algo)
        assert out.rows_in == len(rows) and not out.quarantined
        records += got
    return records


KINDS = ["jsonl", "parquet", "datasets"]


@pytest.mark.parametrize("kind", KINDS)
def test_sft_prompt_completion_text_is_used_as_it_is_with_an_id_from_its_content(tokenizer, tmp_path, kind):
    path = write([{"id": None, "prompt": PROMPT, "completion": "2 + 2 = 4\n#### 4"},
                  {"id": "mine", "prompt": "P", "completion": "C"}], kind, tmp_path)
    records, out = read(tokenizer, path, "sft")
    assert records == [
        {"id": stable_id(source_name(str(path)), PROMPT, "2 + 2 = 4\n#### 4"), "prompt": PROMPT,
         "completion": "2 + 2 = 4\n#### 4"},
        {"id": "mine", "prompt": "P", "completion": "C"}]
    assert out.rows_in == 2 and not out.quarantined


@pytest.mark.parametrize("kind", KINDS)
def test_sft_messages_train_on_the_last_assistant_turn_in_the_models_chat_format(tokenizer, tmp_path, kind):
    records = read_each(tokenizer, [[{"messages": USER + say("4")}], [{"prompt": USER, "completion": say("4")}]],
                        kind, tmp_path, "sft")
    # The tiny model's chat template is the student's prompt format, so the prompt is the one it samples with.
    assert [(r["prompt"], r["completion"]) for r in records] == [(PROMPT, f"4{tokenizer.eos_token}\n\n")] * 2


@pytest.mark.parametrize("kind", KINDS)
def test_preference_rows_explicit_implicit_text_and_conversational_become_preference_pairs(tokenizer, tmp_path, kind):
    records = read_each(tokenizer, [
        [{"prompt": PROMPT, "chosen": "4", "rejected": "5"}],
        [{"chosen": PROMPT + "4", "rejected": PROMPT + "5"}],  # implicit prompt: the shared prefix
        [{"prompt": USER, "chosen": say("4"), "rejected": say("5")}],
        [{"chosen": USER + say("4"), "rejected": USER + say("5"), "pair_id": "p9", "problem_id": "q9", "round": 2}],
    ], kind, tmp_path, "dpo")
    eos = tokenizer.eos_token
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in records] == [
        (PROMPT, "4", "5"), (PROMPT, "4", "5"), (PROMPT, f"4{eos}\n\n", f"5{eos}\n\n"),
        (PROMPT, f"4{eos}\n\n", f"5{eos}\n\n")]
    assert records[3]["pair_id"] == "p9" and records[3]["problem_id"] == "q9" and records[3]["round"] == 2
    assert records[0]["problem_id"] == records[1]["problem_id"] != records[0]["pair_id"]
    assert {r["chosen_source"] for r in records} == {r["rejected_source"] for r in records} == {DATASET_SOURCE}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("algo", ["kto", "rft"])
def test_unpaired_rows_become_kto_examples_with_their_labels(tokenizer, tmp_path, kind, algo):
    records = read_each(tokenizer, [[{"prompt": PROMPT, "completion": "4", "label": True}],
                                    [{"prompt": USER, "completion": say("5"), "label": False, "id": "e1"}]],
                        kind, tmp_path, algo)
    assert [(r["prompt"], r["completion"], r["label"]) for r in records] == [
        (PROMPT, "4", True), (PROMPT, f"5{tokenizer.eos_token}\n\n", False)]
    assert records[1]["example_id"] == "e1" and records[0]["source"] == DATASET_SOURCE
    built = kto_rows([("f", i, r) for i, r in enumerate(records)], tokenizer_counter(tokenizer), 64, 128)
    assert sorted(r["label"] for r in built.rows) == [False, True]


def test_bad_rows_are_quarantined_naming_file_row_and_field(tokenizer, tmp_path):
    path = tmp_path / "prefs.jsonl"
    lines = [
        json.dumps({"prompt": PROMPT, "chosen": "4", "rejected": "5"}),
        json.dumps({"prompt": PROMPT, "chosen": "4"}),  # 1: no rejected
        "{not json",  # 2
        json.dumps({"prompt": PROMPT, "chosen": 4, "rejected": "5"}),  # 3: not text
        json.dumps({"prompt": PROMPT, "chosen": say("4"), "rejected": "5"}),  # 4: mixed kinds
        json.dumps({"prompt": [{"role": "narrator", "content": Q}], "chosen": say("4"),
                    "rejected": say("5")}),  # 5: TRL renders no prompt that ends in a narrator's turn
        json.dumps(["a list"]),  # 6
        json.dumps({"chosen": "", "rejected": "5"}),  # 7
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, out = read(tokenizer, path, "dpo")
    got = {(q["source"], q["row"], q["field"]) for q in out.quarantined}
    assert got == {(str(path), 1, "rejected"), (str(path), 2, None), (str(path), 3, "chosen"),
                   (str(path), 4, "rejected"), (str(path), 5, "prompt"), (str(path), 6, None), (str(path), 7, "chosen")}
    assert [r["prompt"] for r in records] == [PROMPT]
    assert out.rows_in == 8 == len(out.rows) + len(out.quarantined)
    reasons = {q["row"]: q["reason"] for q in out.quarantined}
    assert "dpo reads prompt + chosen + rejected" in reasons[1] and "invalid JSON" in reasons[2]
    assert "one kind for the whole row" in reasons[4] and "chat template" in reasons[5]


def test_unpaired_and_sft_rows_need_their_fields(tokenizer, tmp_path):
    path = write([{"prompt": PROMPT, "completion": "4", "label": "yes"}, {"prompt": PROMPT, "completion": "4"},
                  {"prompt": PROMPT, "chosen": "4", "rejected": "5"}], "jsonl", tmp_path / "kto")
    _, out = read(tokenizer, path, "kto")
    assert [(q["row"], q["field"]) for q in out.quarantined] == [(0, "label"), (1, "label"), (2, "completion")]
    assert "must be true or false" in out.quarantined[0]["reason"]
    path = write([{"messages": USER}, {"text": "plain"}], "jsonl", tmp_path / "sft")
    _, out = read(tokenizer, path, "sft")
    assert [(q["row"], q["field"]) for q in out.quarantined] == [(0, "messages"), (1, "prompt")]
    assert "ending in an assistant turn" in out.quarantined[0]["reason"]


def test_the_project_records_are_told_from_trl_formats_by_their_columns(tmp_path):
    assert is_project_format({"question", "answer"}, "sft") and not is_project_format({"messages"}, "sft")
    assert is_project_format({"pair_id", "prompt", "chosen", "rejected"}, "dpo")
    assert not is_project_format({"prompt", "chosen", "rejected"}, "dpo")
    assert is_project_format({"example_id", "label"}, "kto") and not is_project_format({"prompt", "label"}, "rft")
    path = tmp_path / "x.jsonl"
    path.write_text("{bad\n" + json.dumps({"prompt": "p", "completion": "c"}) + "\n", encoding="utf-8")
    assert column_names(str(path)) == {"prompt", "completion"}
    # A prefs stage that made no pairs still wrote the project's schema: read as the project's own.
    empty = write_parquet([], PREFERENCE_PAIR, tmp_path / "pairs" / "part-0.parquet")
    assert is_project_format(column_names(str(empty.parent)), "dpo")


def test_own_sft_rows_are_length_checked_like_the_projects(tokenizer):
    items = [("f", 0, {"id": "a", "prompt": PROMPT, "completion": "4"}), ("f", 1, {"id": "b", "prompt": " ",
                                                                                 "completion": "4"})]
    out = prompt_completion_rows(items, tokenizer_counter(tokenizer), 64, 128)
    assert out.rows == [{"id": "a", "prompt": PROMPT, "completion": "4"}]
    assert [(q["row"], q["field"], q["reason"]) for q in out.quarantined] == [(1, "prompt", EMPTY_PROMPT)]


@pytest.mark.parametrize("algo, cls", [("sft", SFTTrainConfig), ("dpo", DPOTrainConfig), ("kto", KTOTrainConfig)])
def test_a_trl_file_with_nothing_trainable_fails_before_training_with_the_quarantine_written(
        tiny_model, tmp_path, algo, cls):
    from orca_math.train.stage import TrainDataError, run_preference, run_sft

    path = write([{"prompt": PROMPT}, {"completion": "4"}], "jsonl", tmp_path)
    out = tmp_path / "out"
    cfg = load_stage_config(cls, "tiny", algo)
    with pytest.raises(TrainDataError, match="no trainable rows"):
        run_sft(tiny_model, path, out, cfg) if algo == "sft" else run_preference(algo, tiny_model, path, out, cfg)
    quarantined = read_parquet(out / "quarantine.parquet", QUARANTINE)
    assert [(q["source"], q["row"]) for q in quarantined] == [(str(path), 0), (str(path), 1)]
    entry = json.loads((out / "manifest.json").read_text())["stages"][algo]
    assert entry["rows_in"] == 2 and entry["rows_quarantined"] == 2


@pytest.mark.slow
def test_train_pref_trains_dpo_on_a_trl_preference_file(tiny_model, ray_local, tmp_path):
    from orca_math.cli import main

    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + 1?"}], "chosen": say(f"{a + 1}"),
             "rejected": say(f"{a + 2}")} for a in range(8)]
    rows.append({"prompt": USER, "chosen": say("4")})  # no rejected: quarantined
    path = write(rows, "jsonl", tmp_path)
    out = tmp_path / "m"
    assert main(["train-pref", "--algo", "dpo", "--model", str(tiny_model), "--data", str(path), "--out", str(out),
                 "--config", "tiny", "--max-steps", "2", "--set", "dpo.scaling.local_mode=true",
                 "--set", "dpo.per_device_batch_size=4"]) == 0
    entry = json.loads((out / "manifest.json").read_text())["stages"]["dpo"]
    assert (entry["rows_in"], entry["rows_out"], entry["rows_quarantined"]) == (9, 8, 1)
    assert entry["metrics"]["global_step"] == 2 and (out / "model.safetensors").exists()
