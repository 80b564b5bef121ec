"""Numbers written the ways students and teachers write them, and expressions that merely end in one.

The generated cases of tests/test_answer_forms.py (drawn by hypothesis) and of
bench/judge_vs_math_verify.py (drawn from a seeded ``random.Random``): each function takes the
choices it needs and returns text, so both draw the same family.

- ``gold_text(value)``: the reference as our data holds it (``'1234'``, ``'-0.5'``, ``'3/4'``).
- ``render(value, form)``: ``value`` (a ``Fraction``) written in ``form`` (one of ``FORMS``), or None
  where that form cannot write it (money with a third decimal, a mixed number of an integer...).
- ``wrap(answer, how)``: the answer placed where a model puts it (``WRAPPERS``).
- ``perturbations(value)``: values a wrong answer would have (off by one, by a cent, ten times).
- ``expression(gold, shape, var)``: an expression or equation containing ``gold`` as its trailing
  constant or right-hand side (``SHAPES``); it never equals ``gold``.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

FORMS = ("plain", "thousands", "latex_thousands", "money", "units", "unit_power", "latex_unit_power", "percent",
         "fraction", "latex_fraction", "mixed", "latex_mixed", "scientific_e", "scientific_latex")
WRAPPERS = ("bare", "math", "boxed", "gsm8k", "the_answer_is", "final_answer", "r1_tags", "sentence")
_UNITS = ("apples", "km", "dollars", "cm", "minutes", "kg")


def decimal_places(value: Fraction) -> int | None:
    """How many decimals write ``value`` exactly (None: it has no finite decimal expansion)."""
    den = value.denominator
    for n in range(0, 10):
        if (10 ** n) % den == 0:
            return n
    return None


def _plain(value: Fraction) -> str | None:
    places = decimal_places(value)
    if places is None:
        return None
    return str(value.numerator) if places == 0 else f"{Decimal(value.numerator) / Decimal(value.denominator):.{places}f}"


def gold_text(value: Fraction) -> str:
    """The reference as our data holds it: '1234', '-0.5', '3/4'."""
    if decimal_places(value) is None:
        return f"{value.numerator}/{value.denominator}"
    return _plain(value)


def render(value: Fraction, form: str) -> str | None:
    """``value`` written in ``form``; None where the form does not write such a value."""
    plain = _plain(value)
    places = decimal_places(value)
    if form == "plain":
        return plain
    if form in ("thousands", "latex_thousands"):
        if plain is None or abs(value) < 1000:
            return None
        grouped = f"{Decimal(plain):,.{places}f}"
        return grouped if form == "thousands" else "$" + grouped.replace(",", "{,}") + "$"
    if form == "money":
        if value < 0 or places is None or places > 2:
            return None
        return f"${Decimal(plain):,.2f}"
    if form == "units":
        return None if plain is None else f"{plain} {_UNITS[value.numerator % len(_UNITS)]}"
    if form == "unit_power":
        return None if plain is None else f"{plain} m^2"
    if form == "latex_unit_power":
        return None if plain is None else f"${plain}\\text{{ cm}}^2$"
    if form == "percent":
        return None if plain is None or value < 0 else f"{plain}%"
    if form in ("fraction", "latex_fraction"):
        if value.denominator == 1:
            return None
        sign, num, den = "-" if value < 0 else "", abs(value.numerator), value.denominator
        return f"{sign}{num}/{den}" if form == "fraction" else f"${sign}\\frac{{{num}}}{{{den}}}$"
    if form in ("mixed", "latex_mixed"):
        if value.denominator == 1 or abs(value) < 1:
            return None
        sign, whole, rest = "-" if value < 0 else "", int(abs(value)), abs(value) - int(abs(value))
        if whole > 999:
            return None
        return (f"{sign}{whole} {rest.numerator}/{rest.denominator}" if form == "mixed"
                else f"${sign}{whole}\\frac{{{rest.numerator}}}{{{rest.denominator}}}$")
    if form in ("scientific_e", "scientific_latex"):
        if plain is None or value == 0:
            return None
        mantissa, exponent = _scientific(Decimal(plain))
        return f"{mantissa}e{exponent:+03d}" if form == "scientific_e" else f"${mantissa} \\times 10^{{{exponent}}}$"
    raise ValueError(f"unknown form {form!r}")


def _scientific(d: Decimal) -> tuple[str, int]:
    """4200 -> ('4.2', 3); 0.0042 -> ('4.2', -3)."""
    sign, digits, exp = d.normalize().as_tuple()
    exponent = len(digits) - 1 + exp
    body = "".join(map(str, digits))
    mantissa = body[0] + ("." + body[1:] if len(body) > 1 else "")
    return ("-" if sign else "") + mantissa, exponent


def wrap(answer: str, how: str) -> str | None:
    """``answer`` placed the way ``how`` says; None where that placement does not take it (LaTeX after ####)."""
    latex = len(answer) > 2 and answer.startswith("$") and answer.endswith("$")  # "$1,000.50" is money
    inner = answer[1:-1] if latex else answer
    if how == "bare":
        return answer
    if how == "math":
        return f"${inner}$"
    if how == "boxed":
        return f"So the result is $\\boxed{{{inner}}}$."
    if how == "gsm8k":
        return None if latex else f"First we add the parts.\n#### {answer}"
    if how == "the_answer_is":
        return f"Adding it all up, the answer is {answer}."
    if how == "final_answer":
        return f"Step 1: 2 + 3 = 5.\nFinal Answer: The final answer is {answer}. I hope it is correct."
    if how == "r1_tags":
        return f"<think>Maybe 7, or 12? Let me add 2 + 3 = 5.</think>\n<answer>{answer}</answer>"
    if how == "sentence":
        return None if latex else f"She counts them again, and in the end she has {answer}."
    raise ValueError(f"unknown wrapper {how!r}")


def perturbations(value: Fraction) -> list[Fraction]:
    """Values near ``value`` that a wrong answer has: off by one, by a cent, by a digit, ten times."""
    out = [value + 1, value - 1, value * 10 + (1 if value == 0 else 0), value + Fraction(1, 100), -value - 1]
    if value.denominator > 1:
        out.append(value + Fraction(1, value.denominator))
    return [v for v in out if v != value]


SHAPES = ("linear", "quadratic", "equation_zero", "equation_rhs", "scaled_rhs", "function_rhs", "fraction_rhs",
          "product_rhs", "subtracted", "exponent_rhs")


def expression(gold: str, shape: str, var: str, a: int = 3, b: int = 2) -> str:
    """An expression or equation with ``gold`` as its trailing constant or right-hand side, never equal to it."""
    return {
        "linear": f"{a}{var} + {gold}",                     # 3x + 5
        "quadratic": f"{var}^2+{a}{var}+{gold}",           # x^2+3x+5
        "equation_zero": f"{a}{var} - {b}q + {gold} = 0",   # 3x - 2q + 5 = 0
        "equation_rhs": f"{a}{var} + {b} = {gold}",         # 3x + 2 = 5
        "scaled_rhs": f"{a}{var} = {gold}",                 # 3x = 5
        "function_rhs": f"\\tan({var})={gold}",             # \tan(x)=5
        "fraction_rhs": f"\\frac{{{var}}}{{{a}}} = {gold}",  # \frac{x}{3} = 5
        "product_rhs": f"{a} * {var} = {gold}",             # 3 * x = 5
        "subtracted": f"{var}^2 - {gold}",                  # x^2 - 5
        "exponent_rhs": f"{var}^{a} = {gold}",               # x^3 = 5
    }[shape]
