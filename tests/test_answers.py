"""Answer checking against what real models write."""

import threading
import time

import pytest

from orca_math.answers import extract_answer, is_correct, normalize_number, reference_answer

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
    ("The answer is 0.33", "1/3", True),
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
    chatter = "Let me think about 12 apples and 7 pears again. " * 2100  # ~100 KB
    texts = [chatter, chatter + "\n#### 9", "#### 9\n" + chatter, chatter.replace(" ", "")]
    for text in texts:
        start = time.perf_counter()
        is_correct(text, "9")
        extract_answer(text)
        assert time.perf_counter() - start < 0.5


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
