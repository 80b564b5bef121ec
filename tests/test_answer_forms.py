"""Generated cases for the answer checker (hypothesis): a number written in any of the usual forms equals
its value and not a nearby one; an expression or equation that merely ends in the gold never equals it.

The forms and shapes are in tests/answer_forms.py (bench/judge_vs_math_verify.py draws the same family).
Derandomized and bounded so the suite stays fast and a failure reproduces."""

from __future__ import annotations

from fractions import Fraction

from answer_forms import (  # tests/ is on sys.path
    FORMS,
    SHAPES,
    WRAPPERS,
    expression,
    gold_text,
    perturbations,
    render,
    wrap,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from orca_math.judge.answers import check_answer, is_correct

FAST = settings(max_examples=250, deadline=None, derandomize=True, database=None)

integers = st.integers(min_value=-10**9, max_value=10**9).map(Fraction)
decimals = st.builds(lambda n, k: Fraction(n, 10**k), st.integers(-10**9, 10**9), st.integers(1, 3))
fractions = st.builds(Fraction, st.integers(-500, 500), st.integers(2, 12)).filter(lambda f: f.denominator > 1)
values = st.one_of(integers, decimals, fractions)


@st.composite
def written_numbers(draw) -> tuple[Fraction, str]:
    value = draw(values)
    form = draw(st.sampled_from([f for f in FORMS if render(value, f) is not None]))
    answer = render(value, form)
    how = draw(st.sampled_from([w for w in WRAPPERS if wrap(answer, w) is not None]))
    return value, wrap(answer, how)


@FAST
@given(written_numbers(), st.sampled_from(["plain", "gsm8k", "math"]))
def test_a_number_in_any_usual_form_equals_its_value_and_not_a_nearby_one(case, gold_form):
    value, text = case
    gold = gold_text(value)
    gold = {"plain": gold, "gsm8k": f"Adding up.\n#### {gold}", "math": f"${gold}$"}[gold_form]
    assert check_answer(text, gold) is True, (text, gold)
    for wrong in perturbations(value):
        assert check_answer(text, gold_text(wrong)) is False, (text, gold_text(wrong))


@st.composite
def expressions_ending_in_the_gold(draw) -> tuple[str, str]:
    gold = gold_text(draw(st.one_of(st.integers(0, 10**6).map(Fraction), decimals.map(abs))))
    expr = expression(gold, draw(st.sampled_from(SHAPES)), draw(st.sampled_from("xyzabcnpqtkmrs")),
                      a=draw(st.integers(2, 99)), b=draw(st.integers(2, 99)))
    return gold, wrap(expr, draw(st.sampled_from(WRAPPERS)))


@FAST
@given(expressions_ending_in_the_gold())
def test_an_expression_or_equation_ending_in_the_gold_never_equals_it(case):
    gold, text = case
    for reference in (gold, f"${gold}$", f"#### {gold}"):
        assert check_answer(text, reference) is not True, (text, reference)
        assert check_answer(reference, text) is not True, (reference, text)  # nor the other way round
    assert not is_correct(text, gold)
