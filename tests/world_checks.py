"""Independent answer checks for world tests: re-do a solution's arithmetic with Python."""

import re
from fractions import Fraction

EQUATION = re.compile(r"(\d+(?:\s*[-+*/]\s*\d+)+)\s*=\s*(\d+)")


def recompute(solution: str) -> int:
    """Re-do every 'a op b = c' of a solution with Python arithmetic; return the last result."""
    equations = EQUATION.findall(solution)
    assert equations, solution
    for lhs, rhs in equations:
        assert re.fullmatch(r"[\d\s+\-*/]+", lhs)
        assert Fraction(eval(lhs, {"__builtins__": {}})) == int(rhs), f"{lhs} = {rhs} in\n{solution}"  # noqa: S307
    return int(equations[-1][1])
