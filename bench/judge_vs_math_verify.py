"""This answer checker against math-verify, side by side in one run: agreement with the expected label and judgments/s.

Three suites, every case a (prediction, gold, expected) triple:

- ``math-verify numeric``: the 89 cases of math-verify's own test suite whose gold is a plain number
  (tests/fixtures/math_verify_numeric_cases.json; expected = math-verify's test expectation);
- ``generated forms``: a number written in one of the usual forms and placed the way models place it
  (tests/answer_forms.py: thousands separators, LaTeX thousands, money, units, percent, fractions,
  mixed numbers, scientific notation; \\boxed, ####, "the answer is", <answer> tags...) against its
  value (expected right) and against a nearby value (expected wrong);
- ``generated expressions``: an expression or equation ending in the gold (``3x + 5`` for 5, ``3x + 2 = 5``)
  against the gold (expected wrong).

Each checker judges each case the way a user calls it: ours ``is_correct(pred, gold)``; math-verify
``verify(parse(gold), parse(pred))`` with its defaults. "Wrong accepted" counts expected-wrong cases judged
right, "right refused" the other way. Rates: one untimed pass, then the best of ``--rounds`` timed passes, the
two checkers' passes interleaved, in CPU seconds of this process (one process, one core, our caches
cleared before each pass).

    .venv/bin/python bench/judge_vs_math_verify.py [--n-forms 600] [--n-expressions 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from answer_forms import FORMS, SHAPES, WRAPPERS, expression, gold_text, perturbations, render, wrap  # noqa: E402


def math_verify_cases() -> list[tuple[str, str, bool, int]]:
    """(pred, gold, expected, float_rounding) from math-verify's own numeric cases."""
    cases = json.loads((REPO / "tests/fixtures/math_verify_numeric_cases.json").read_text())["cases"]
    return [(c["pred"], c["gold"], c["expected"], c.get("precision", 6)) for c in cases]


def _value(rng: random.Random) -> Fraction:
    kind = rng.randrange(3)
    if kind == 0:
        return Fraction(rng.randint(-10**9, 10**9))
    if kind == 1:
        return Fraction(rng.randint(-10**9, 10**9), 10 ** rng.randint(1, 3))
    while True:
        f = Fraction(rng.randint(-500, 500), rng.randint(2, 12))
        if f.denominator > 1:
            return f


def generated_forms(n: int, rng: random.Random) -> list[tuple[str, str, bool, int]]:
    """``n`` numbers, each written in a random usual form: against its value and against one nearby value."""
    out = []
    for _ in range(n):
        value = _value(rng)
        answer = render(value, rng.choice([f for f in FORMS if render(value, f) is not None]))
        text = wrap(answer, rng.choice([w for w in WRAPPERS if wrap(answer, w) is not None]))
        out.append((text, gold_text(value), True, 6))
        out.append((text, gold_text(rng.choice(perturbations(value))), False, 6))
    return out


def generated_expressions(n: int, rng: random.Random) -> list[tuple[str, str, bool, int]]:
    """``n`` expressions or equations with the gold as trailing constant or right-hand side: all wrong."""
    out = []
    for _ in range(n):
        value = Fraction(rng.randint(0, 10**6)) if rng.random() < 0.5 else Fraction(rng.randint(0, 10**9), 10 ** rng.randint(1, 3))
        gold = gold_text(value)
        expr = expression(gold, rng.choice(SHAPES), rng.choice("xyzabcnpqtkmrs"), a=rng.randint(2, 99), b=rng.randint(2, 99))
        out.append((wrap(expr, rng.choice(WRAPPERS)), gold, False, 6))
    return out


def ours():
    from orca_math.judge import answers

    def judge(pred: str, gold: str, rounding: int) -> bool:
        return answers.is_correct(pred, gold, float_rounding=rounding)

    def clear() -> None:
        answers._final_answer.cache_clear()
        answers._reference.cache_clear()

    return judge, clear


def math_verify():
    from math_verify import parse, verify

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.ERROR)

    def judge(pred: str, gold: str, rounding: int) -> bool:
        return bool(verify(parse(gold), parse(pred), float_rounding=rounding))

    return judge, lambda: None


def measure(checkers: dict, cases: list, rounds: int) -> dict[str, tuple[list[bool], float]]:
    """Each checker's verdicts on ``cases`` and its best judgments/s over ``rounds`` timed passes,
    the checkers' passes interleaved so that a busy machine slows both alike."""
    verdicts, best = {}, dict.fromkeys(checkers, 0.0)
    for name, (judge, clear) in checkers.items():
        clear()
        verdicts[name] = [judge(p, g, r) for p, g, _, r in cases]
    for _ in range(rounds):
        for name, (judge, clear) in checkers.items():
            clear()
            start = time.process_time()  # CPU seconds: on a shared machine wall time counts others' turns
            for p, g, _, r in cases:
                judge(p, g, r)
            best[name] = max(best[name], len(cases) / (time.process_time() - start))
    return {name: (verdicts[name], best[name]) for name in checkers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-forms", type=int, default=600, help="generated numbers (two cases each)")
    parser.add_argument("--n-expressions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per checker and suite (best kept)")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    suites = {"math-verify numeric": math_verify_cases(),
              "generated forms": generated_forms(args.n_forms, rng),
              "generated expressions": generated_expressions(args.n_expressions, rng)}
    checkers = {"orca-math": ours(), "math-verify": math_verify()}
    print(f"{'suite':<22}{'checker':<13}{'cases':>6}{'agree':>8}{'wrong accepted':>16}{'right refused':>15}{'judgments/s':>13}")
    for suite, cases in suites.items():
        for name, (verdicts, rate) in measure(checkers, cases, args.rounds).items():
            agree = sum(v == c[2] for v, c in zip(verdicts, cases))
            wrong_accepted = sum(v and not c[2] for v, c in zip(verdicts, cases))
            right_refused = sum(c[2] and not v for v, c in zip(verdicts, cases))
            print(f"{suite:<22}{name:<13}{len(cases):>6}{agree / len(cases):>8.1%}{wrong_accepted:>16}{right_refused:>15}"
                  f"{rate:>13,.0f}", flush=True)


if __name__ == "__main__":
    main()
