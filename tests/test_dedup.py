"""Dedup and decontamination on constructed near-duplicates of GSM8K test questions."""

from __future__ import annotations

import json

import pytest

from orca_math.common.contract import Reason
from orca_math.common.records import to_table
from orca_math.common.schema import QUARANTINE
from orca_math.seeds import read_problems
from orca_math.seeds.config import DecontamConfig, DedupConfig
from orca_math.seeds.dedup import (
    decontaminate,
    deduplicate,
    normalize_question,
    question_numbers,
)


def problem(pid: str, question: str) -> dict:
    return {"id": pid, "question": question, "reference_answer": "1", "source": "generated", "provenance": None}


@pytest.fixture(scope="module")
def gsm8k_test(gsm8k_dir):
    return read_problems(str(gsm8k_dir / "test.jsonl")).rows


@pytest.fixture(scope="module")
def gsm8k_train(gsm8k_dir):
    return read_problems(str(gsm8k_dir / "train.jsonl"), limit=400).rows


def swap_name(q: str) -> str:
    """A paraphrase a teacher might write: a different name, same story and numbers."""
    first = q.split()[0]
    return q.replace(first, "Zorblax", 1) if first[0].isupper() else "So, " + q


def new_numbers(q: str) -> str:
    """The same template with every number changed (a new problem, not a duplicate)."""
    import re

    return re.sub(r"\d+", lambda m: str(int(m.group(0)) + 7), q)


def test_normalization_ignores_case_spacing_punctuation_and_thousands_separators():
    a = "Tom has 1,000 apples.  He eats 2.5 of them!"
    b = "tom HAS 1000 apples he eats 2.5 of them"
    assert normalize_question(a) == normalize_question(b)
    assert question_numbers(a) == ("1000", "2.5")


def test_exact_and_near_duplicates_are_removed_keeping_the_first(gsm8k_test):
    base = gsm8k_test[:30]
    rows = [problem(f"orig{i}", p["question"]) for i, p in enumerate(base)]
    rows += [problem(f"exact{i}", "  " + p["question"].upper().replace("?", " ?").replace(" ", "  ") + " ") for i, p in enumerate(base[:10])]
    rows += [problem(f"near{i}", swap_name(p["question"])) for i, p in enumerate(base[10:20])]
    rows += [problem(f"renum{i}", new_numbers(p["question"])) for i, p in enumerate(base[20:30])]
    out = deduplicate(rows, DedupConfig())
    kept = {r["id"] for r in out.rows}
    assert kept == {f"orig{i}" for i in range(30)} | {f"renum{i}" for i in range(10)}
    assert out.reasons() == {Reason.DUPLICATE: 20}
    details = [json.loads(q["raw"]) for q in out.quarantined]
    assert {d["match"] for d in details[:10]} == {"exact"} and {d["match"] for d in details[10:]} == {"near"}
    assert details[10]["duplicate_of"] == "orig10" and details[10]["jaccard"] >= 0.8
    to_table(out.quarantined, QUARANTINE)


def test_same_story_with_new_numbers_is_a_near_duplicate_only_when_numbers_are_ignored(gsm8k_test):
    rows = [problem("a", gsm8k_test[0]["question"]), problem("b", new_numbers(gsm8k_test[0]["question"]))]
    assert len(deduplicate(rows, DedupConfig()).rows) == 2
    assert len(deduplicate(rows, DedupConfig(same_numbers=False, threshold=0.5)).rows) == 1


def test_reference_rows_remove_their_copies_but_are_not_output(gsm8k_train):
    seeds = gsm8k_train[:5]
    rows = [problem("copy", seeds[0]["question"]), problem("para", swap_name(seeds[1]["question"])),
            problem("new", "A brand new question about 3 trains and 4 buses?")]
    out = deduplicate(rows, DedupConfig(), reference=seeds)
    assert [r["id"] for r in out.rows] == ["new"]
    assert json.loads(out.quarantined[0]["raw"])["duplicate_of"] == f"reference:{seeds[0]['id']}"


def test_decontamination_catches_constructed_near_copies_of_gsm8k_test(gsm8k_test):
    evals = {"gsm8k-test": gsm8k_test}
    picked = gsm8k_test[100:120]
    filler = ("Before the school fair started, the organizers spent a long morning setting up wooden tables, "
              "hanging colorful banners, sweeping the gym floor, testing loud speakers, labeling plastic boxes, "
              "counting raffle tickets, checking that every booth had enough paper cups, napkins, pencils, "
              "markers, tape and string, while parents parked cars outside near the old library and children "
              "waited impatiently by the gate. Meanwhile, in a classroom upstairs, a teacher wrote this puzzle: ")
    rows = []
    for i, p in enumerate(picked[:5]):
        rows.append(problem(f"exact{i}", p["question"].lower()))
    for i, p in enumerate(picked[5:10]):
        rows.append(problem(f"name{i}", swap_name(p["question"])))
    for i, p in enumerate(picked[10:15]):
        rows.append(problem(f"renum{i}", new_numbers(p["question"])))  # same template: still contamination
    for i, p in enumerate(picked[15:20]):
        rows.append(problem(f"embedded{i}", filler + p["question"]))  # Jaccard diluted, 13-gram shared
    clean = [problem(f"clean{i}", q) for i, q in enumerate([
        "A bakery sells 12 muffins per tray and bakes 7 trays. How many muffins does it bake?",
        "Lena runs 3 km on Monday and twice as far on Tuesday. How far does she run in total?",
    ])]
    out = decontaminate(rows + clean, evals, DecontamConfig())
    assert {r["id"] for r in out.rows} == {"clean0", "clean1"}
    assert out.removed_by_eval_set == {"gsm8k-test": 20}
    matches = {r["id"]: json.loads(q["raw"])["match"] for r, q in zip(rows, out.quarantined)}
    assert all(matches[f"embedded{i}"] == "13-gram" for i in range(5))
    # Without the 13-gram check, only the paper's TF-IDF + unigram Jaccard test remains.
    paper_only = decontaminate(rows, evals, DecontamConfig(ngram_words=None))
    assert {r["id"] for r in paper_only.rows} == {f"embedded{i}" for i in range(5)}


def test_decontamination_leaves_most_training_questions_alone(gsm8k_train, gsm8k_test):
    out = decontaminate(gsm8k_train, {"gsm8k-test": gsm8k_test}, DecontamConfig())
    # GSM8K train/test share a few templates; the paper's 0.5 unigram Jaccard flags ~1%.
    assert len(out.quarantined) <= 0.03 * len(gsm8k_train)
    assert out.rows_in == len(out.rows) + len(out.quarantined)
    assert all(q["reason"] == Reason.CONTAMINATED for q in out.quarantined)
