"""DPO pairs and KTO examples follow the Orca-Math rules, one problem at a time."""

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from orca_math.common.records import read_parquet, write_parquet
from orca_math.common.schema import (
    JUDGMENT,
    KTO_EXAMPLE,
    PREFERENCE_PAIR,
    PROBLEM,
    QUARANTINE,
    SAMPLE,
    empty_provenance,
    stable_id,
)
from orca_math.prefs.config import PreferenceConfig
from orca_math.prefs.core import build_preferences, donor_rank


def _problem(pid):
    return {"id": pid, "question": f"Question {pid}?", "reference_solution": f"teacher {pid}\n#### 1",
            "reference_answer": "1", "source": "unit"}


def _practice(spec: dict[str, list[bool]]):
    """spec: problem id -> verdicts of its 4 samples."""
    problems, samples, judgments = [], [], []
    for pid, verdicts in spec.items():
        problems.append(_problem(pid))
        for i, ok in enumerate(verdicts):
            sid = f"{pid}-{i}"
            samples.append({"sample_id": sid, "problem_id": pid, "sample_index": i,
                            "text": f"{pid} sample {i} {'right' if ok else 'wrong'}"})
            judgments.append({"sample_id": sid, "problem_id": pid, "correct": ok})
    return problems, samples, judgments


def test_mixed_problem_pairs_every_positive_with_every_negative():
    prefs = build_preferences(*_practice({"a": [True, True, False, False]}), PreferenceConfig())
    assert len(prefs.pairs) == 3 * 2  # (2 right + teacher) x 2 wrong
    assert {p["chosen_source"] for p in prefs.pairs} == {"student", "teacher"}
    assert all("wrong" in p["rejected"] and "wrong" not in p["chosen"] for p in prefs.pairs)
    assert sorted(e["label"] for e in prefs.kto_examples) == [False, False, True, True, True]


def test_all_wrong_samples_fall_back_to_teacher_positive():
    prefs = build_preferences(*_practice({"a": [False] * 4}), PreferenceConfig())
    assert len(prefs.pairs) == 4
    assert all(p["chosen"] == "teacher a\n#### 1" and p["chosen_source"] == "teacher" for p in prefs.pairs)


def test_all_right_problem_borrows_one_negative_from_each_of_four_others():
    spec = {"easy": [True] * 4, **{f"h{i}": [False] * 4 for i in range(6)}}
    prefs = build_preferences(*_practice(spec), PreferenceConfig())
    easy = [p for p in prefs.pairs if p["problem_id"] == "easy"]
    assert len(easy) == 5 * 4  # (4 right + teacher) x 4 borrowed
    borrowed = {p["rejected"] for p in easy}
    assert len(borrowed) == 4 and len({b.split()[0] for b in borrowed}) == 4  # 4 different donor problems
    assert all(p["rejected_source"] == "borrowed" and not p["rejected"].startswith("easy") for p in easy)
    assert prefs.report["negatives_borrowed"] == 4 and prefs.report["problems_borrowing"] == 1
    kto_easy = [e for e in prefs.kto_examples if e["problem_id"] == "easy" and not e["label"]]
    assert len(kto_easy) == 4 and {e["source"] for e in kto_easy} == {"borrowed"}


def test_borrowing_can_be_switched_off():
    spec = {"easy": [True] * 4, "hard": [False] * 4}
    prefs = build_preferences(*_practice(spec), PreferenceConfig(borrow_negatives=0))
    assert not [p for p in prefs.pairs if p["problem_id"] == "easy"]
    assert prefs.report["problems_without_pairs"] == 1


def test_pairs_per_problem_cap():
    prefs = build_preferences(*_practice({"a": [True, True, False, False]}), PreferenceConfig(max_pairs_per_problem=2))
    assert len(prefs.pairs) == 2


def test_unjudged_and_empty_samples_are_quarantined_and_counted():
    problems, samples, judgments = _practice({"a": [True, False, False, True]})
    samples.append({"sample_id": "orphan", "problem_id": "a", "text": "never judged"})
    samples.append({"sample_id": "x", "problem_id": "zzz", "text": "unknown"})
    judgments.append({"sample_id": "empty", "problem_id": "a", "correct": False})
    samples.append({"sample_id": "empty", "problem_id": "a", "text": "   "})
    prefs = build_preferences(problems, samples, judgments, PreferenceConfig())
    assert sorted(q["reason"] for q in prefs.quarantined) == ["empty completion", "not judged", "unknown problem"]
    assert prefs.report["samples_used"] + prefs.report["samples_quarantined"] == len(samples)


def test_report_histogram_counts_problems_by_correct_samples():
    spec = {"a": [True] * 4, "b": [False] * 4, "c": [True, False, False, False], "d": [True, True, False, False]}
    prefs = build_preferences(*_practice(spec), PreferenceConfig())
    assert prefs.report["correct_histogram"] == {"0": 1, "1": 1, "2": 1, "4": 1}
    assert prefs.report["pairs"] == len(prefs.pairs)


def test_deterministic_and_written_with_their_schemas(tmp_path):
    spec = {"easy": [True] * 4, **{f"h{i}": [False, True, False, False] for i in range(5)}}
    a = build_preferences(*_practice(spec), PreferenceConfig(seed=3), round_k=2)
    b = build_preferences(*_practice(spec), PreferenceConfig(seed=3), round_k=2)
    assert a.pairs == b.pairs and a.kto_examples == b.kto_examples
    assert len({p["pair_id"] for p in a.pairs}) == len(a.pairs)
    write_parquet(a.pairs, PREFERENCE_PAIR, tmp_path / "pairs.parquet")
    write_parquet(a.kto_examples, KTO_EXAMPLE, tmp_path / "kto.parquet")
    assert all(p["round"] == 2 and p["prompt"].startswith("USER:\n") for p in a.pairs)


@pytest.mark.parametrize("teacher_positive,expected", [(True, 4), (False, 0)])
def test_teacher_positive_switch(teacher_positive, expected):
    prefs = build_preferences(*_practice({"a": [False] * 4}), PreferenceConfig(teacher_positive=teacher_positive))
    assert len(prefs.pairs) == expected


def test_skip_mastered_leaves_out_problems_the_student_always_gets_right():
    spec = {"easy": [True] * 4, "mixed": [True, False, False, False], "hard": [False] * 4}
    prefs = build_preferences(*_practice(spec), PreferenceConfig(skip_mastered=True, borrow_negatives=4))
    assert {e["problem_id"] for e in prefs.kto_examples} == {"mixed", "hard"}
    assert {p["problem_id"] for p in prefs.pairs} == {"mixed", "hard"}
    assert prefs.report["problems_mastered_skipped"] == 1 and prefs.report["negatives_borrowed"] == 0
    assert prefs.report["correct_histogram"] == {"0": 1, "1": 1, "4": 1}


def test_a_text_written_twice_is_two_rows_with_their_own_ids():
    problems, samples, judgments = _practice({"a": [True, True, True, False], "b": [False] * 4})
    for s in samples:  # the student writes the teacher's solution word for word, and one slip twice
        s["text"] = {"a": "teacher a\n#### 1"}.get(s["problem_id"], "b wrong") if s["sample_index"] < 2 else s["text"]
    prefs = build_preferences(problems, samples, judgments, PreferenceConfig(borrow_negatives=0))
    a = Counter((e["completion"], e["label"]) for e in prefs.kto_examples if e["problem_id"] == "a")
    assert a == {("teacher a\n#### 1", True): 3, ("a sample 2 right", True): 1, ("a sample 3 wrong", False): 1}
    b = Counter(e["completion"] for e in prefs.kto_examples if e["problem_id"] == "b")
    assert b == {"b wrong": 2, "b sample 2 wrong": 1, "b sample 3 wrong": 1, "teacher b\n#### 1": 1}
    assert len(prefs.pairs) == 4 * 1 + 1 * 4  # a: 4 positives x 1 negative; b: teacher x 4 negatives
    assert len({p["pair_id"] for p in prefs.pairs}) == len(prefs.pairs)
    assert len({e["example_id"] for e in prefs.kto_examples}) == len(prefs.kto_examples)
    # A repeated text's first row keeps the id it had before repeats were numbered; the next is new.
    ids = [e["example_id"] for e in prefs.kto_examples if e["completion"] == "b wrong"]
    assert ids[0] == stable_id("kto", 1, "b", "b wrong", False) != ids[1]


def test_each_problem_draws_the_same_rows_whatever_else_is_in_the_round():
    cfg = PreferenceConfig(max_pairs_per_problem=3, max_positives_per_problem=2)
    alone = build_preferences(*_practice({"a": [True, True, True, False]}), cfg)
    spec = {"a": [True, True, True, False], **{f"h{i}": [True, False, True, False] for i in range(8)}}
    problems, samples, judgments = _practice(spec)
    random.Random(1).shuffle(samples)
    random.Random(2).shuffle(judgments)
    crowd = build_preferences(problems[::-1], samples, judgments, cfg)
    assert [p for p in crowd.pairs if p["problem_id"] == "a"] == alone.pairs
    assert [e for e in crowd.kto_examples if e["problem_id"] == "a"] == alone.kto_examples


def test_borrowing_draws_only_from_the_donor_pool():
    spec = {**{f"easy{i}": [True] * 4 for i in range(5)}, **{f"h{i}": [False] * 4 for i in range(10)}}
    cfg = PreferenceConfig(donor_pool=3)
    prefs = build_preferences(*_practice(spec), cfg)
    pool = sorted((f"h{i}" for i in range(10)), key=lambda pid: donor_rank(pid, cfg, 1))[:3]
    borrowed = [p for p in prefs.pairs if p["rejected_source"] == "borrowed"]
    assert {p["rejected"].split()[0] for p in borrowed} == set(pool)
    assert prefs.report["negatives_borrowed"] == 5 * 3 and prefs.report["problems_borrowing"] == 5


# The stage: the same rows as the rules above, streamed on Ray Data.

def _write_inputs(spec: dict[str, list[bool]], folder, parts: int = 1, extra_samples: list[dict] = ()):
    """The round as Parquet: problems in one file, samples and judgments as ``parts`` part files each."""
    problems, samples, judgments = _practice(spec)
    samples += list(extra_samples)
    problems = [{**p, "provenance": empty_provenance()} for p in problems]
    samples = [{**s, "model": "M1", "prompt": "p"} for s in samples]
    judgments = [{**j, "method": "exact"} for j in judgments]
    for name, rows, schema in (("samples", samples, SAMPLE), ("judgments", judgments, JUDGMENT)):
        for k in range(parts):
            write_parquet(rows[k::parts], schema, folder / f"{name}.parquet" / f"part-{k}.parquet")
    write_parquet(problems, PROBLEM, folder / "problems.parquet")
    return [folder / f"{n}.parquet" for n in ("problems", "samples", "judgments")]


def _stage_rows(out) -> dict:
    from orca_math.common.manifest import RunManifest

    rows = {name: sorted(read_parquet(out / f"{name}.parquet", schema), key=lambda r: json.dumps(r, sort_keys=True))
            for name, schema in (("pairs", PREFERENCE_PAIR), ("kto", KTO_EXAMPLE), ("positives", KTO_EXAMPLE),
                                 ("quarantine", QUARANTINE))}
    entry = RunManifest(out / "manifest.json").get("prefs")
    return {**rows, "report": json.loads((out / "report.json").read_text()),
            "counts": {k: entry[k] for k in ("rows_in", "rows_out", "rows_quarantined", "quarantine_reasons")}}


@pytest.mark.slow
def test_prefs_stage_writes_positives_for_rejection_sampling_fine_tuning(tmp_path, ray_local):
    from orca_math.common.runner import run_stage
    from orca_math.prefs.stage import prefs_stage

    # As in a run: the manifest lives in the run folder, and the stage's own folder does not exist yet.
    inputs = _write_inputs({"a": [True, False, False, False], "b": [False] * 4}, tmp_path)
    problems, samples, judgments = inputs
    entry = run_stage(prefs_stage(PreferenceConfig(), tmp_path / "round1" / "prefs", problems=problems,
                                  samples=samples, judgments=judgments), tmp_path)
    paths = {k: Path(v) for k, v in entry["outputs"].items()}
    positives = read_parquet(paths["positives"], KTO_EXAMPLE)
    kto = read_parquet(paths["kto"], KTO_EXAMPLE)
    assert sorted(positives, key=str) == sorted((e for e in kto if e["label"]), key=str)
    assert sorted((e["problem_id"], e["source"]) for e in positives) == [("a", "student"), ("a", "teacher"),
                                                                        ("b", "teacher")]


SPEC = {**{f"e{i:02d}": [True] * 4 for i in range(12)}, **{f"m{i:02d}": [True, False, True, False] for i in range(20)},
        **{f"w{i:02d}": [False] * 4 for i in range(8)}}
ODD_SAMPLES = [{"sample_id": "orphan", "problem_id": "m00", "sample_index": 9, "text": "never judged"},
               {"sample_id": "x", "problem_id": "zzz", "sample_index": 0, "text": "unknown"}]


@pytest.mark.slow
def test_prefs_stage_writes_the_in_memory_rows_however_the_inputs_are_split(tmp_path, ray_local):
    from orca_math.prefs.stage import run_prefs

    cfg = PreferenceConfig(max_pairs_per_problem=6, donor_pool=5)
    runs = {}
    for label, parts, per_partition in (("one", 1, 10**6), ("many", 7, 9), ("again", 7, 9)):
        inputs = _write_inputs(SPEC, tmp_path / label, parts, ODD_SAMPLES)
        run_prefs(*inputs, tmp_path / label / "prefs", cfg.model_copy(update={"samples_per_partition": per_partition}))
        runs[label] = _stage_rows(tmp_path / label / "prefs")
    assert runs["one"] == runs["many"] == runs["again"]

    problems, samples, judgments = _practice(SPEC)
    expected = build_preferences(problems, samples + ODD_SAMPLES, judgments, cfg)
    got = runs["one"]
    assert got["pairs"] == sorted(expected.pairs, key=lambda r: json.dumps(r, sort_keys=True))
    assert got["kto"] == sorted(expected.kto_examples, key=lambda r: json.dumps(r, sort_keys=True))
    assert got["report"] == {**expected.report, "donor_pool": 5}
    assert got["counts"] == {"rows_in": 162, "rows_out": 160, "rows_quarantined": 2,
                             "quarantine_reasons": {"not judged": 1, "unknown problem": 1}}


@pytest.mark.slow
def test_prefs_stage_borrows_from_a_bounded_pool(tmp_path, ray_local):
    from orca_math.prefs.stage import run_prefs

    spec = {**{f"e{i:03d}": [True] * 4 for i in range(40)}, **{f"w{i:03d}": [False, True, False, True] for i in range(60)}}
    cfg = PreferenceConfig(donor_pool=6, samples_per_partition=50)
    paths = run_prefs(*_write_inputs(spec, tmp_path, parts=3), tmp_path / "prefs", cfg)
    borrowed = [e for e in read_parquet(paths["kto"], KTO_EXAMPLE) if e["source"] == "borrowed"]
    first = sorted((f"w{i:03d}" for i in range(60)), key=lambda pid: donor_rank(pid, cfg, 1))[:6]
    assert len(borrowed) == 40 * 4 and {e["completion"].split()[0] for e in borrowed} <= set(first)
    report = json.loads((tmp_path / "prefs" / "report.json").read_text())
    assert report["donor_pool"] == 6 and report["problems_borrowing"] == 40


@pytest.mark.slow
@pytest.mark.parametrize("per_partition", [9, 10**6], ids=["shuffled", "one-partition"])
def test_prefs_stage_resumes_from_its_committed_parts(tmp_path, ray_local, per_partition):
    """An attempt that died after some commits: the rerun keeps them, builds only the problems they
    do not cover (lending from the first attempt's pool), and ends with the uninterrupted rows."""
    from orca_math.common.manifest import RunManifest
    from orca_math.prefs.stage import run_prefs

    cfg = PreferenceConfig(max_pairs_per_problem=6, donor_pool=5, samples_per_partition=per_partition,
                           problems_per_part=8)  # several parts from one partition too
    spec = {**SPEC, **{f"x{i:02d}": [True] * 4 for i in range(6)}}  # more borrowers: the pool matters
    inputs = _write_inputs(spec, tmp_path, 7, ODD_SAMPLES)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_prefs(*inputs, ref, cfg)
    run_prefs(*inputs, killed, cfg)

    # What a SIGKILL leaves: half the parts committed, the others written but not committed, a temp
    # file, a stage marked running. The pool would differ if rebuilt from the unfinished problems.
    commits = sorted((killed / ".committed").glob("part-*.parquet"))
    assert len(commits) >= 4
    for f in commits[::2]:
        f.unlink()
    (killed / "pairs.parquet" / ".part-tmp").write_bytes(b"half a file")
    RunManifest(killed / "manifest.json").update("prefs", status="running")
    run_prefs(*inputs, killed, cfg)

    assert _stage_rows(killed) == _stage_rows(ref)
    assert not (killed / "pairs.parquet" / ".part-tmp").exists()
    entry, first = RunManifest(killed / "manifest.json").get("prefs"), RunManifest(ref / "manifest.json").get("prefs")
    assert first["rows_restored"] == 0 and first["rows_computed"] == first["rows_in"] == 4 * len(spec) + 2
    assert entry["rows_restored"] > 0 and entry["rows_computed"] > 0
    assert entry["rows_restored"] + entry["rows_computed"] == entry["rows_in"]
