"""The written calculations of a solution, checked: "21 / 2 = 7" is false whatever the final answer.

A student can reach the right final answer through a wrong step (measured on the demo's student:
138 of the 351 right samples it kept as positives in a round had one, e.g. "21 / 2 = 7 dollars.
#### 7"). Training on such a sample as a positive teaches the wrong arithmetic. This module finds
the equations written in a text ("5 * 3 = 15", "15 * 20 / 100 = 3", GSM8K's "<<48/2=24>>",
"2 + 3 = 5 * 2 = 10") and says which do not hold.

It is conservative, since a false alarm demotes a right sample: only runs made of numbers,
operators, parentheses, "$" and "%" are read; a side that does not parse as arithmetic (prose,
LaTeX beyond \\times/\\cdot/\\div, a variable) is not checked; a result is accepted when it is
the exact value rounded to the digits it is written with (so "10 / 3 = 3.33" and "10 / 3 = 3" hold).
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

_SUBS = [
    (re.compile(r"\\times|\\cdot|[×·]"), "*"),
    (re.compile(r"\\div|÷"), "/"),
    (re.compile(r"[–−]"), "-"),
    (re.compile(r"(?<=\d)[ \t]*x[ \t]*(?=\d)"), "*"),  # "3 x 4", never the variable x
    (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), ""),  # thousands separators
    (re.compile(r"≈"), "="),
]
# A run of arithmetic with at least one "=": what lies around it (words, units, LaTeX) ends it.
_RUN = re.compile(r"[\d.$%()+\-*/ \t]*=[\d.$%()+\-*/ \t=]*")
# A run glued to what comes before it ("6:00+48 = 6:48", "3x+5 = 20") starts mid-expression; one
# followed by the rest of a mixed number or a remainder ("17/3 = 5 and 2/3") has not all its result.
_GLUED_BEFORE = re.compile(r"[\w:^!.,]$")
_GLUED_AFTER = re.compile(r"[\w:^!(]")
_REST_AFTER = re.compile(r"(?:and\s+\(?\d|r\s*\d|R\s*\d|remainder\b)")
_SENTENCE_END = re.compile(r"\.(?=\s|$)")  # "... = 8. 8 * 2 = 16": two equations, not one
_MAX_RUN = 200
_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)


def _value(expr: str) -> tuple[Fraction, bool] | None:
    """``expr``'s exact value and whether it has an operator; None when it is not plain arithmetic."""
    expr = expr.strip().rstrip(".").replace("$", "")
    expr = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"(\1/100)", expr)
    if not expr or not re.search(r"\d", expr):
        return None
    try:
        tree = ast.parse(expr, mode="eval").body
    except (SyntaxError, ValueError):
        return None

    def ev(node) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, _OPS):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Div):
                if b == 0:
                    raise ZeroDivisionError
                return a / b
            return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[type(node.op)]
        raise ValueError(node)

    try:
        return ev(tree), isinstance(tree, ast.BinOp)
    except (ValueError, ZeroDivisionError, RecursionError):
        return None


def _decimals(written: str) -> int:
    written = written.strip().rstrip(".").replace("$", "")
    return len(written.split(".")[1]) if "." in written else 0


def _fraction_divisor(expr: str) -> str | None:
    """``expr`` with "a / b/c" read as a divided by the fraction b/c (a common way to write it:
    "25 / 1/3 = 75"); None when it has no such division."""
    reread = re.sub(r"/\s+(\d+(?:\.\d+)?/\d+(?:\.\d+)?)", r"/(\1)", expr)
    return reread if reread != expr else None


def _holds(exact: Fraction, written: str, value: Fraction) -> bool:
    """Whether ``written`` (whose value is ``value``) is ``exact`` rounded to the digits it shows."""
    return abs(exact - value) <= Fraction(1, 2) / 10 ** _decimals(written) + Fraction(1, 10**9)


def false_calculations(text: str) -> list[str]:
    """The equations written in ``text`` that do not hold, as written (empty: none found false).

    In a chain "a = b = c" each side is compared with the one before it; only a side with an
    operator is the calculation, the side after it its result.
    """
    for pattern, repl in _SUBS:
        text = pattern.sub(repl, text)
    wrong = []
    for m in _RUN.finditer(text):
        run, after = m.group(0), text[m.end():]
        first_ok = run[0].isspace() or not _GLUED_BEFORE.search(text[:m.start()])
        last_ok = not (_REST_AFTER.match(after) if run[-1].isspace() else _GLUED_AFTER.match(after))
        pieces = _SENTENCE_END.split(run)
        for n, piece in enumerate(pieces):
            if piece.strip().startswith("(") and piece.strip().endswith(")"):
                piece = piece.strip()[1:-1]  # "(5 * 3 = 15)": the parentheses around the equation
            sides = piece.split("=")
            if len(sides) < 2 or len(piece) > _MAX_RUN:
                continue
            values = [_value(s) for s in sides]
            if n == 0 and (not first_ok or re.match(r"\s*(?:[+*/]|-\s)", sides[0])):
                values[0] = None
            if n == len(pieces) - 1 and not last_ok:
                values[-1] = None
            for i in range(len(sides) - 1):
                left, right = values[i], values[i + 1]
                if left is None or right is None or not left[1] or right[1]:
                    continue  # only "calculation = number" is checked
                if _holds(left[0], sides[i + 1], right[0]):
                    continue
                reread = _fraction_divisor(sides[i])
                other = _value(reread) if reread else None
                if not (other and _holds(other[0], sides[i + 1], right[0])):
                    wrong.append(f"{sides[i].strip()} = {sides[i + 1].strip().rstrip('.')}")
    return wrong
