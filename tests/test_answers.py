"""Answer checking against what real models write: GSM8K-style students, LaTeX-writing teachers,
and a peer's suite (math-verify's own test cases) as the yardstick."""

import json
import random
import threading
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from orca_math.judge.answers import check_answer, extract_answer, is_correct, normalize_number, reference_answer

FIXTURES = Path(__file__).parent / "fixtures"
DOCS = Path(__file__).parent.parent / "docs" / "judge.md"

GSM8K_REF = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"

EXTRACT_CASES = [
    ("So the total is 1,000.\n#### 1,000", "1000"),
    ("The answer is $18.00.", "18"),
    ("Thus we get \\boxed{18}.", "18"),
    ("Answer: **18** eggs", "18"),
    ("A: 18", "18"),
    ("The discount is 18%", "18"),
    ("The answer is -5 degrees.", "-5"),
    ("The answer is \u22125.", "-5"),
    ("\\boxed{\\frac{3}{4}}", "3/4"),
    ("\\boxed{\\dfrac{6}{8}}", "3/4"),
    ("\\boxed{0.75}", "0.75"),
    ("The answer is 3/4 of a pie.", "3/4"),
    ("#### 72\n\nUSER: Tom has 5 apples. ASSISTANT: 5 + 3 = 8\n#### 8", "72"),
    ("The answer is 18. Let me double check: 3 * 6 = 18 and 2 + 2 = 4.", "18"),
    ("Final answer: 42\nThat is 6 more than 36.", "42"),
    ("She pays 3 * $4 = $12, so she gets $20 - $12 = $8 back.", "8"),
    ("\\boxed{\\$1,250}", "1250"),
    ("\\boxed{12\\text{ dollars}}", "12"),
    ("The answer is .5", "0.5"),
    ("She sold 48/2 = <<48/2=24>>24 clips, so <<48+24=72>>72 in all.", "72"),  # GSM8K calculator notes
    ("I am not sure how to solve this.", None),
    ("", None),
    ("#### ", None),
]


@pytest.mark.parametrize("text,expected", EXTRACT_CASES)
def test_extract_answer_handles_real_model_output(text, expected):
    assert extract_answer(text) == expected


CORRECT_CASES = [
    # (candidate, reference, correct)
    ("48 + 24 = 72\n#### 72", GSM8K_REF, True),
    ("The answer is 72 clips.", GSM8K_REF, True),
    ("The answer is 71.", GSM8K_REF, False),
    ("#### 1,000", "1000", True),
    ("The answer is $18.00.", "18", True),
    ("\\boxed{18}", "#### 18", True),
    ("Answer: **18** eggs", "18", True),
    ("A: 18", "18", True),
    ("18%", "18", True),
    ("The answer is 0.75", "3/4", True),
    ("The answer is 3/4", "0.75", True),
    ("The answer is 0.333333", "1/3", True),
    ("The answer is 0.33", "1/3", False),  # math-verify and Qwen2.5-Math both say no (see the tolerance tests)
    ("The answer is 0.3", "1/3", False),
    ("The answer is 18.0", "17.96", False),
    ("The answer is -5", "-5", True),
    ("The answer is 5", "-5", False),
    ("The answer is 18. Later: 19 20 21", "18", True),
    ("I cannot solve this", "18", False),
    ("", "18", False),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    ("\\boxed{\\sqrt{2}}", "\\sqrt{3}", False),
]


@pytest.mark.parametrize("candidate,reference,correct", CORRECT_CASES)
def test_is_correct_table(candidate, reference, correct):
    assert is_correct(candidate, reference) is correct


def test_reference_answer_reads_gsm8k_solutions_and_bare_answers():
    assert reference_answer(GSM8K_REF) == "72"
    assert reference_answer("1,234") == "1234"
    assert reference_answer("$5.50") == "5.5"


def test_normalize_number():
    assert normalize_number("$1,000.50") == "1000.5"
    assert normalize_number("no number") is None


def test_every_call_is_fast_on_100kb_of_text():
    is_correct("\\boxed{2\\sqrt{2}}", "\\sqrt{8}")  # sympy's one-off import and warm-up are not a call's cost
    chatter = "Let me think about 12 apples and 7 pears again. " * 2100  # ~100 KB
    latex = "We have $x = \\frac{3}{4} + 2$ and \\(y = 9\\), so $$z = 5$$ costs $5 and $6. " * 1300
    texts = {
        "chatter": chatter, "answer last": chatter + "\n#### 9", "answer first": "#### 9\n" + chatter,
        "no spaces": chatter.replace(" ", ""), "latex": latex,
        "latex, symbolic answer": latex + "The final answer is $\\frac{1+\\sqrt{5}}{2}$.",
        "unclosed boxes": "\\boxed{" * 14_000, "markers only": "The final answer is " * 5000,
        "markdown headings": "#### Step 1\n" * 9000, "dollars": "$" * 100_000, "digits": "1," * 50_000,
        "noise": "".join(random.Random(0).choice("$\\{}()0123456789 ,.=+-*/abc\n#") for _ in range(100_000)),
    }
    for name, text in texts.items():
        for call in (lambda t: is_correct(t, "9"), extract_answer):
            # A fresh text each time (the checker caches recent ones); best of three, as the limit is
            # on the checker, not on a busy machine's scheduler.
            best = min(_timed(lambda: call(text + " " * i)) for i in range(1, 4))
            assert best < 0.05, f"{name}: {best * 1000:.0f} ms"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_pathological_symbolic_input_is_refused_not_hung():
    start = time.perf_counter()
    assert is_correct("\\boxed{9^{9^{9^{9}}}}", "\\sqrt{2}") is False
    assert time.perf_counter() - start < 0.5


def test_works_outside_the_main_thread():
    """Ray actors and Serve replicas call it off the main thread, where SIGALRM cannot be used."""
    results = []
    t = threading.Thread(target=lambda: results.append(is_correct("\\boxed{2\\sqrt{2}}", "\\sqrt{8}")))
    t.start()
    t.join(timeout=30)
    assert results == [True]


# --- LaTeX, as GPT-4-class teachers and Qwen/Llama on vLLM write it ---------------------------------

@pytest.mark.parametrize("candidate,reference,correct", [
    ("$\\frac{1+\\sqrt{5}}{2}$", "2", False),  # its last number is 2, its value 1.618...
    ("The answer is $\\frac{1+\\sqrt{5}}{2}$.", "2", False),
    ("\\boxed{\\frac{1+\\sqrt{5}}{2}}", "\\frac{1+\\sqrt{5}}{2}", True),
    ("$\\frac{34}{16}+\\frac{\\sqrt{1358}}{16}$", "4", False),
    ("$4\\sqrt{2}$", "4", False),
    ("Answer \\( (9+1) \\)", "10", True),
    ("so $x = 5 + 5 + 1 = 7 = 11$", "11", True),  # the last value of an equation chain
    ("$x = \\frac{1}{3} \\approx 0.33$", "1/3", True),  # the exact value before the approximation
    ("$\\sqrt{17}$", "4.123105625617661", True),
])
def test_an_expression_is_judged_by_its_value_never_by_its_last_number(candidate, reference, correct):
    assert is_correct(candidate, reference) is correct


@pytest.mark.parametrize("candidate,reference", [
    ("$-[0,1)$", "1"),
    ("The solution set is $(0, 1)$.", "1"),
    ("The solution set is $(0, 1)$.", "0"),
    ("so x lies in the interval (0, 1).", "1"),
    ("\\boxed{[2, 5]}", "5"),
    ("The roots are $\\boxed{-2, 1}$.", "1"),
    ("\\boxed{12 \\text{ and } 13}", "13"),
    ("$x \\geq 5$", "5"),
    ("x >= 5", "5"),
    ("She needs 10-15 minutes", "-5"),  # a range in prose, not a subtraction
])
def test_an_interval_a_list_or_a_relation_is_not_one_of_its_numbers(candidate, reference):
    assert is_correct(candidate, reference) is False


@pytest.mark.parametrize("candidate", ["AZYUK2A", "The code is B2B", "Step2", "x_2", "It is 204_5."])
def test_a_number_glued_to_a_word_is_not_an_answer(candidate):
    assert is_correct(candidate, "2") is False and is_correct(candidate, "5") is False


@pytest.mark.parametrize("candidate,reference,correct", [
    ("$14{,}916$", "14916", True),
    ("Final Answer: The final answer is $14 {, }916$. I hope it is correct.", "14916", True),
    ("\\boxed{\\$10,\\!000}", "10000", True),
    ("$1\\,000$", "1000", True),
    ("is $\\boxed{11,\\! 111,\\! 111,\\! 100}$", "11111111100", True),
    ("is $\\boxed{32, 349}$", "32349", False),  # a list of two numbers
    ("1 000", "1000", True),  # the whole answer: spaces group thousands
    ("She has 1 000 apples", "1000", False),  # in prose they do not
])
def test_latex_thousands_separators(candidate, reference, correct):
    assert is_correct(candidate, reference) is correct


def test_the_final_answer_line_wins_over_an_earlier_intermediate_box():
    text = ("The interest on the first CD is $0.04 \\cdot 10,000 \\cdot \\frac{1}{2} = \\boxed{200}$, on the second "
            "$0.05 \\cdot 10,200 \\cdot \\frac{1}{2} = \\boxed{255}$. So after six months in the second CD, Dr. Zaius has "
            "$10,200 + $255 = $10,455. Final Answer: The final answer is $10,455$. I hope it is correct.")
    assert extract_answer(text) == "10455"
    assert is_correct(text, "$10455$") and not is_correct(text, "255")


def test_a_later_box_wins_over_an_earlier_final_answer_line_and_weak_markers_lose_to_both():
    assert extract_answer("Final answer: 12. Wait, I forgot the tax: \\boxed{13}") == "13"
    assert extract_answer("\\boxed{72}. Note: the answer is not 27.") == "72"
    assert extract_answer("**Final Answer**\n\n\\boxed{189}\n</think>\nThe area is \\(\\boxed{189}\\) cm.") == "189"


@pytest.mark.parametrize("text,expected", [
    ("#### 27\nlet me check 72", "27"),
    ("#### 72\n\nQuestion: Tom has 5 apples and buys 3. How many?\nAnswer: 5 + 3 = 8\n#### 8", "72"),
    ("So 2/3 of them win. <|im_start|>user\nWhat is 5 + 3?<|im_end|>\n<|im_start|>assistant\n\\boxed{8}", "2/3"),
    ("The answer is 12.\n\nHuman: and 7 + 1?\n\nAssistant: The answer is 8.", "12"),
    ("#### Step 1: add\n5 + 3 = 8\n#### Step 2: double\n8 * 2 = 16\n#### 16", "16"),  # markdown headings
    ("#### 1. Understand the problem\nShe has 18 eggs.", "18"),
])
def test_a_model_running_on_past_its_answer_is_ignored(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("candidate,reference,correct", [
    ("The answer is 0.33", "1/3", False),  # math-verify: 0.33 vs 0.333333; Qwen2.5-Math: 1% apart
    ("The answer is 0.333333", "1/3", True),
    ("The answer is 1000.05", "1000", False),  # Qwen2.5-Math alone would accept it (within 1e-4)
    ("The answer is 5866600", "5866608", False),  # integers are exact
    ("The answer is 0.000001", "0.0000012", False),  # math-verify alone would accept it (same to 6 places)
    ("The answer is 16386.17", "$16386.17$", True),
    ("The answer is 18%", "0.18", True),  # both anchors read 18% as 0.18 too
    ("The answer is 18%", "18", True),
])
def test_the_tolerance_is_where_math_verify_and_qwen2_5_math_agree(candidate, reference, correct):
    assert is_correct(candidate, reference) is correct


def test_the_tolerance_can_be_configured():
    assert is_correct("The answer is 0.33", "1/3", float_rounding=2, rel_tol=None)
    assert not is_correct("The answer is 0.333333", "1/3", float_rounding=8)


# --- no expression equals a number because a piece of it does (issue 36) ----------------------------

@pytest.mark.parametrize("candidate,reference", [
    ("So she has 3x + 5 apples.", "5"),
    ("\\boxed{y+1}", "1"),
    ("a^2+3a+2", "a^3+3a+2"),
    ("2p - q + 7 = 0", "p + 4q - 1 = 0"),  # both used to read as 0
    ("\\tan(t)=\\frac{3}{7}", "\\cos(t)=\\frac{3}{7}"),
    ("The answer is 3x + 5", "3"),
    ("$2x$", "2"),
    ("2 * x = 6", "6"),
    ("3x = 6", "6"),
    ("\\sin x = 0.5", "0.5"),
    ("$\\frac{x}{2} = 3$", "3"),
    ("We get 5. The answer is x^2.", "5"),  # not the 5 before it either
    ("$x \\geq 5$", "5"),
    ("The ratio is 3:4", "4"),
    ("7:05 pm", "07:05"),  # 07:05 may be either half of the day
])
def test_what_the_checker_cannot_decide_is_none_and_never_right(candidate, reference):
    assert check_answer(candidate, reference) is None
    assert is_correct(candidate, reference) is False


@pytest.mark.parametrize("candidate,reference", [
    ("x = 3", "3"),
    ("Answer = 3", "3"),
    ("total = $3", "3"),
    ("$x \\approx 11$", "11"),
    ("Therefore, Ali caught 2*x = 2*6 = 12 kg of fish", "12"),  # a calculation follows the name
    ("the father covered 3*4m = 12m", "12"),  # m is a unit on both sides
    ("35 arms + 14 arms = 49 arms", "49"),
    ("900 ml / 15 ml/g = 60 g", "60"),
])
def test_an_equation_states_its_right_hand_side_when_its_left_is_a_name_or_a_calculation(candidate, reference):
    assert check_answer(candidate, reference) is True


@pytest.mark.parametrize("candidate,reference,verdict", [
    ("<think>Maybe it is 7.</think>\n<answer>12</answer>", "12", True),  # R1 / open-r1
    ("<think>It is 12.</think>\n<answer>7</answer>", "12", False),
    ("<answer>\n$\\boxed{12}$ apples\n</answer>", "12", True),
    ("<think>So the answer is \\boxed{12}", "12", None),  # cut off while thinking: no answer
    ("The area is 36 m^2.", "36", True),
    ("$36\\text{ cm}^2$", "36", True),
    ("$5\\text{ m}$", "5", True),
    ("4.2\\times10^{-3}", "0.0042", True),
    ("4.2e-03", "0.0042", True),
    ("$6.02 \\times 10^{23}$", "6.02e23", True),
    ("6.02e-05", "-5", False),
    ("07:05", "07:05:00", True),
    ("11:45", "09:45", False),
    ("7:05 pm", "19:05", True),
    ("2 1/4", "2.25", True),
    ("She used -2 1/4 cups", "-9/4", True),
    ("$2\\frac{1}{4}$", "9/4", True),  # math-verify reads it so too
    ("3:4", "6:8", True),
    ("3:4", "4:3", False),
])
def test_answer_tags_units_with_exponents_scientific_notation_times_and_mixed_numbers(candidate, reference, verdict):
    assert check_answer(candidate, reference) is verdict


def test_every_gsm8k_solution_is_judged_as_labelled(gsm8k_dir):
    """OpenAI's labelled solutions (train and test): each reaches its own answer and not the next integer."""
    for split in ("train", "test"):
        for line in (gsm8k_dir / f"{split}.jsonl").read_text().splitlines():
            solution = json.loads(line)["answer"]
            answer = solution.rsplit("####", 1)[1].strip()
            assert is_correct(solution, answer), solution[-200:]
            assert not is_correct(solution, str(Fraction(answer.replace(",", "")) + 1)), solution[-200:]


# --- a peer's suite as the yardstick ---------------------------------------------------------------

MATH_VERIFY = json.loads((FIXTURES / "math_verify_numeric_cases.json").read_text())

# Where we part from math-verify, on purpose; docs/judge.md gives the reasons at length.
KNOWN_DISAGREEMENTS = {
    "tests/test_all.py:70": "European decimal comma (1000,99): an English-only product reads no number",
    "tests/test_all.py:71": "European decimal comma in the gold (1,22): no reference answer, so nothing is correct",
    "tests/test_all.py:72": "European decimal comma (2,74): no number",
    "tests/test_all.py:87": "European decimal comma in the gold (0,111): no reference answer",
    "tests/test_all.py:132": "9 alone between $ signs on their own lines: we read 9 (the gold), math-verify reads nothing",
    "tests/test_all.py:133": "9 alone between \\( \\) on their own lines: likewise",
}


@pytest.mark.parametrize("case", MATH_VERIFY["cases"], ids=[c["source"] for c in MATH_VERIFY["cases"]])
def test_math_verify_numeric_cases(case):
    got = is_correct(case["pred"], case["gold"], float_rounding=case.get("precision", 6))
    if case["source"] in KNOWN_DISAGREEMENTS:
        assert got is not case["expected"], "agrees now: drop it from KNOWN_DISAGREEMENTS and docs/judge.md"
    else:
        assert got is case["expected"], case["test"]


def test_no_wrong_answer_is_judged_right_in_the_peer_suite():
    """Where math-verify says wrong and we say right, the prediction's answer is the gold's answer."""
    for case in MATH_VERIFY["cases"]:
        if not case["expected"] and is_correct(case["pred"], case["gold"]):
            assert case["source"] in KNOWN_DISAGREEMENTS
            assert extract_answer(case["pred"]) == reference_answer(case["gold"]) is not None, case["source"]


def test_the_fixture_names_its_source_and_every_disagreement_is_documented():
    about = MATH_VERIFY["about"]
    assert about["source"] == "https://github.com/huggingface/Math-Verify" and len(about["commit"]) == 40
    assert "Apache-2.0" in about["license"] and "MIT License" in about["mit_notice"]
    assert len(MATH_VERIFY["cases"]) >= 60
    docs = DOCS.read_text()
    assert about["commit"] in docs
    for source in KNOWN_DISAGREEMENTS:
        assert f"`{source}`" in docs, f"{source} is not explained in docs/judge.md"


# --- property: the usual renderings of a number agree with exact arithmetic ------------------------

def _renderings(value: Decimal) -> list[str]:
    plain = format(value.normalize(), "f") if value != value.to_integral_value() else str(int(value))
    out = [f"\\boxed{{{plain}}}", f"#### {plain}", f"So the answer is {plain}.", f"$\\boxed{{{plain}}}$"]
    if value >= 0:
        out += [f"So she pays ${value:,.2f} in all.", f"That is {value:.2f} dollars", f"The total is ${value:,.2f}"]
    return out


def test_usual_renderings_agree_with_exact_arithmetic():
    rng = random.Random(15)
    for _ in range(400):
        cents = rng.choice([rng.randint(0, 99), rng.randint(0, 10**5), rng.randint(0, 10**9)]) * rng.choice([1, 1, 1, -1])
        value = Decimal(cents) / 100 if rng.random() < 0.7 else Decimal(cents)
        delta = rng.choice([0, 0, Decimal("0.01"), Decimal("-0.01"), 1, -1, Decimal("0.1"), 10, 100])
        reference = value + delta
        ref_text = rng.choice([str(reference), f"{reference:.2f}", f"#### {reference}"])
        for text in _renderings(value):
            expected = Fraction(value) == Fraction(reference)
            assert is_correct(text, ref_text) is expected, (text, ref_text)
