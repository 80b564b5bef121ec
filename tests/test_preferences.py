"""DPO pairs and KTO examples follow the Orca-Math rules."""

import pytest

from orca_math.common.records import write_parquet
from orca_math.common.schema import KTO_EXAMPLE, PREFERENCE_PAIR
from orca_math.prefs.config import PreferenceConfig
from orca_math.prefs.core import build_preferences


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
            samples.append({"sample_id": sid, "problem_id": pid, "text": f"{pid} sample {i} {'right' if ok else 'wrong'}"})
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


def test_prefs_stage_writes_positives_for_rejection_sampling_fine_tuning(tmp_path):
    from orca_math.common.records import read_parquet
    from orca_math.common.schema import JUDGMENT, PROBLEM, SAMPLE, empty_provenance
    from orca_math.prefs.stage import run_prefs

    problems, samples, judgments = _practice({"a": [True, False, False, False], "b": [False] * 4})
    problems = [{**p, "provenance": empty_provenance()} for p in problems]
    samples = [{**s, "model": "M1", "sample_index": int(s["sample_id"][-1]), "prompt": "p"} for s in samples]
    judgments = [{**j, "method": "exact"} for j in judgments]
    paths = run_prefs(write_parquet(problems, PROBLEM, tmp_path / "problems.parquet"),
                      write_parquet(samples, SAMPLE, tmp_path / "samples.parquet"),
                      write_parquet(judgments, JUDGMENT, tmp_path / "judgments.parquet"),
                      tmp_path / "prefs", PreferenceConfig())
    positives = read_parquet(paths["positives"], KTO_EXAMPLE)
    kto = read_parquet(paths["kto"], KTO_EXAMPLE)
    assert positives == [e for e in kto if e["label"]]
    assert sorted((e["problem_id"], e["source"]) for e in positives) == [("a", "student"), ("a", "teacher"),
                                                                        ("b", "teacher")]


def test_skip_mastered_leaves_out_problems_the_student_always_gets_right():
    spec = {"easy": [True] * 4, "mixed": [True, False, False, False], "hard": [False] * 4}
    prefs = build_preferences(*_practice(spec), PreferenceConfig(skip_mastered=True, borrow_negatives=4))
    assert {e["problem_id"] for e in prefs.kto_examples} == {"mixed", "hard"}
    assert {p["problem_id"] for p in prefs.pairs} == {"mixed", "hard"}
    assert prefs.report["problems_mastered_skipped"] == 1 and prefs.report["negatives_borrowed"] == 0
    assert prefs.report["correct_histogram"] == {"0": 1, "1": 1, "4": 1}
