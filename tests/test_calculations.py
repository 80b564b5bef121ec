"""A solution's written calculations, checked: the right answer through "21 / 2 = 7" is not a right solution."""

import json

import pytest

from orca_math.common.config import load_stage_config
from orca_math.judge.calculations import false_calculations
from orca_math.prefs.config import PreferenceConfig
from orca_math.prefs.core import build_preferences
from orca_math.world.config import WorldConfig
from orca_math.world.core import generate_problems


@pytest.mark.parametrize("text, wrong", [
    ("Each classmate gets 21 / 2 = 7 dollars.\n#### 7", ["21 / 2 = 7"]),  # the demo student's, verbatim
    ("Fatima has 18 - 6 = 6 marbles.\n#### 6", ["18 - 6 = 6"]),
    ("He has <<48/2=25>>25 clips", ["48/2 = 25"]),
    ("3 x 4 = 13", ["3*4 = 13"]),
    ("4 \\times 10 = 41", ["4 * 10 = 41"]),
    ("(20 * 3 = 61)", ["20 * 3 = 61"]),
    ("The answer is 5. 3 + 2 = 5. Then 5 * 2 = 11.", ["5 * 2 = 11"]),
    ("He pays 5+3=9 dollars", ["5+3 = 9"]),
])
def test_a_false_step_is_found_and_quoted(text, wrong):
    assert false_calculations(text) == wrong


@pytest.mark.parametrize("text", [
    "The tip is 15 * 20 / 100 = 3 dollars.\nSo Tariq pays 15 + 3 = 18 dollars",  # chained operators
    "He has <<48/2=24>>24 clips",  # GSM8K's calculator annotation
    "10 / 3 = 3.33 and 10/3 = 3",  # rounded to the digits written
    "2 + 3 = 5 * 2 = 10",  # a chain: each result against the step before it
    "So $1,200 + $300 = $1,500.",
    "x = 5, so 3 x 4 = 12",  # x between numbers is times, elsewhere a variable
    "(20 * 3 = 60)", "15 * 20% = 3", "$\\frac{1}{2} \\times 10 = 5$", "2.5 * 4 = 10.0",
    "Thus the table costs $2,430 – ($1,250 + $850) = $2,430 – $2,100 = $330",
    "he used 25 / 1/3 = 75 decorations",  # "divided by the fraction 1/3"
])
def test_true_steps_pass(text):
    assert false_calculations(text) == []


@pytest.mark.parametrize("text", [
    "the sun sets at 6:00+48=6:48 PM",  # a time, not 6:00 plus 48
    "so 21 x (1 and 1/3) = 28 pages",  # begins inside a parenthesis
    "17/3 = 5 and 2/3 loads", "17 / 5 = 3 r 2",  # a mixed number, a remainder: the result goes on
    "26=5+3x\n21=3x", "X*2 + 3*X - 3*6 = 77",  # algebra: a side with a variable is not arithmetic
    "1/0 = 5", "22/7 ≈ 3.14", "\\sqrt{16} = 4",
])
def test_what_cannot_be_read_as_plain_arithmetic_is_not_judged(text):
    """A false alarm would demote a right sample, so a step it cannot read is left alone."""
    assert false_calculations(text) == []


def test_the_world_teachers_solutions_all_hold():
    """The world quarantines a solution the check rejects: none is, on 1,000 of the demo's problems."""
    out = generate_problems("train", 1000, load_stage_config(WorldConfig, "configs/demo.yaml", "world"))
    assert len(out.rows) == 1000 and out.quarantined == []


def test_almost_none_of_gsm8k_s_human_solutions_is_flagged(gsm8k_dir):
    """GSM8K's own solutions have real slips ("2*8 = 24 hours", "100 * 0.75 = $0.75"); the check
    flags about that many, not the ways people write correct steps."""
    rows = [json.loads(line) for line in (gsm8k_dir / "train.jsonl").open()]
    flagged = [r["answer"] for r in rows if false_calculations(r["answer"])]
    assert len(flagged) / len(rows) < 0.005, flagged[:10]


def _round(texts: dict[str, list[tuple[str, bool]]]):
    problems, samples, judgments = [], [], []
    for pid, items in texts.items():
        problems.append({"id": pid, "question": f"Q {pid}?", "reference_solution": "12 / 2 = 6 dollars.\n#### 6",
                         "reference_answer": "6", "source": "unit"})
        for i, (text, ok) in enumerate(items):
            samples.append({"sample_id": f"{pid}-{i}", "problem_id": pid, "sample_index": i, "text": text})
            judgments.append({"sample_id": f"{pid}-{i}", "problem_id": pid, "correct": ok})
    return problems, samples, judgments


def test_a_lucky_right_answer_is_a_negative_when_calculations_are_checked():
    right, lucky, wrong = "12 / 2 = 6 dollars.\n#### 6", "12 / 3 = 6 dollars.\n#### 6", "12 / 3 = 4 dollars.\n#### 4"
    rnd = _round({"a": [(right, True), (lucky, True), (wrong, False)], "b": [(right, True), (lucky, True)]})
    trusting = build_preferences(*rnd, PreferenceConfig(skip_mastered=True))
    checked = build_preferences(*rnd, PreferenceConfig(skip_mastered=True, check_calculations=True))

    def labels(prefs, pid):
        return sorted((e["completion"] == lucky, e["label"]) for e in prefs.kto_examples if e["problem_id"] == pid)

    assert (True, True) in labels(trusting, "a") and not labels(trusting, "b")  # b: every answer right, skipped
    assert (True, False) in labels(checked, "a") and (True, True) not in labels(checked, "a")
    assert (True, False) in labels(checked, "b")  # b has something to teach after all
    assert not [p for p in checked.pairs if p["chosen"] == lucky]
    assert {p["rejected"] for p in checked.pairs if p["problem_id"] == "b"} == {lucky}
    assert checked.report["lucky_samples"] == 2 and trusting.report["lucky_samples"] == 0
    assert checked.report["correct_histogram"] == {"2": 2}  # the judge's count of right answers, as judged
    assert checked.report["problems_mastered_skipped"] == 0 and trusting.report["problems_mastered_skipped"] == 1
