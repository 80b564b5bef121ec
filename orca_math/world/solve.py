"""Solve: write a program's step-by-step solution, and check a solution without trusting it.

The check plays the role of the LLM flow's second, independent solve: the answer is recomputed
from the program's formula (``steps.expression``, evaluated by a separate little evaluator, not
the ``value`` arithmetic that produced the text), every ``a op b = c`` line in the text is
re-done from its own numbers (``judge.calculations``, the check practice applies to the
student's samples too), and the final ``#### N`` must agree with both.
"""

from __future__ import annotations

import re

from orca_math.judge.answers import extract_answer, is_correct
from orca_math.judge.calculations import false_calculations
from orca_math.world.program import Program, ProgramError
from orca_math.world.render import render_solution
from orca_math.world.steps import evaluate_expression, expression

# "12 + 5 = 17", "40 * 25 / 100 = 10": integers joined by + - * /, then "= result".
EQUATION = re.compile(r"(\d+(?:\s*[-+*/]\s*\d+)+)\s*=\s*(\d+)")


def solve(program: Program) -> str:
    """The reference solution of ``program``: arithmetic lines, then ``#### answer``."""
    return render_solution(program)


def expected_answer(program: Program) -> int:
    """The answer recomputed from the program's formula (independent of the rendered text)."""
    value = evaluate_expression(expression(program))
    if value.denominator != 1 or value < 0:
        raise ProgramError(f"answer {value} is not a non-negative whole number")
    return int(value)


def solution_errors(program: Program, solution: str) -> list[str]:
    """What is wrong with ``solution`` as a solution of ``program`` (empty list: nothing)."""
    errors: list[str] = []
    try:
        answer = expected_answer(program)
    except ProgramError as e:
        return [f"program has no answer: {e}"]
    equations = EQUATION.findall(solution)
    if not equations:
        errors.append("no arithmetic shown")
    errors += [f"wrong arithmetic: {eq}" for eq in false_calculations(solution)]
    if equations and int(equations[-1][1]) != answer:
        errors.append(f"last step gives {equations[-1][1]}, the program gives {answer}")
    if not is_correct(solution, str(answer)):
        errors.append(f"final answer {extract_answer(solution)!r} != recomputed {answer}")
    return errors
