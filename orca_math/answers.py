"""Answer checking: pull the final answer out of a model's text and compare it with a reference.

This decides every label the student learns from, so it is strict where it must be (no answer
means wrong) and forgiving where models are sloppy in harmless ways (``$1,000.00`` equals
``1000``; ``3/4`` equals ``0.75``; a rounded ``0.33`` equals ``1/3``).

Numbers are handled here in linear-time regexes and exact ``Fraction`` arithmetic. Anything
symbolic that is left over (``\\sqrt{2}``, ``2\\pi``) goes to math-verify with its SIGALRM timeouts
switched off (they fail outside the main thread: Ray actors, Serve replicas) and bounded by
input size instead: only a short, exponent-free expression ever reaches sympy.
"""

from __future__ import annotations

import logging
import re
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

__all__ = ["extract_answer", "is_correct", "normalize_number", "reference_answer"]

# Answers live at the end of a solution; the tail is all we search in long texts so every call
# stays fast on 100 KB of chatter. Markers are searched in the head too (see _search_window).
_TAIL_CHARS = 4000
_MAX_SYMBOLIC_CHARS = 48

_NUM = r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|-?\$?\.\d+"
_NUM_RE = re.compile(_NUM)

# Explicit final-answer markers, strongest first. The first marker kind present wins over any
# number that follows it: models often keep chattering ("Let me double check: 3 + 4 = 7").
_GSM8K_MARK = re.compile(r"####\s*")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_PHRASES = [
    re.compile(r"final answer\s*(?:is|:|=)?\s*:?\s*", re.I),
    re.compile(r"the answer is\s*:?\s*", re.I),
    re.compile(r"(?:^|\n)\s*\**(?:answer|ans|a)\**\s*[:=]\s*", re.I),
]

_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}")
_LATEX_NOISE = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{[^{}]*\}|\\[,;!: ]|\\%|\\\$|\^\\circ|\^\{\\circ\}")


def _clean_number(raw: str) -> str | None:
    """'$1,000.50' -> '1000.5', '3 / 4' -> '3/4', '18.00' -> '18'; None if not a number."""
    s = raw.replace("$", "").replace(",", "").replace(" ", "").replace("\u2212", "-")
    s = s.rstrip(".")
    if not s or s in {"-", "."}:
        return None
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            value = Fraction(Decimal(num)) / Fraction(Decimal(den))
            if value.denominator == 1:
                return str(value.numerator)
            return f"{value.numerator}/{value.denominator}"
        d = Decimal(s)
    except (ArithmeticError, ValueError, ZeroDivisionError):
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def normalize_number(text: str) -> str | None:
    """Normalize one numeric answer string; None when it holds no number."""
    m = _NUM_RE.search(text.replace("\u2212", "-"))
    return _clean_number(m.group(0)) if m else None


def _braced(text: str, start: int) -> str | None:
    """Content of the brace group whose opening brace is just before ``start``."""
    depth = 1
    for i in range(start, min(len(text), start + 400)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def _latex_to_plain(expr: str) -> str:
    expr = _LATEX_FRAC.sub(lambda m: f"{m.group(1)}/{m.group(2)}", expr)
    return _LATEX_NOISE.sub("", expr).strip()


def _answer_after(text: str, pos: int) -> str | None:
    """The first number right after a marker (within the same line, markdown allowed)."""
    line = text[pos : pos + 200].split("\n", 1)[0]
    boxed = _BOXED.search(line)
    if boxed:
        inner = _braced(line, boxed.end())
        if inner is not None:
            return _boxed_answer(inner)
    line = _latex_to_plain(line)
    m = _NUM_RE.search(line)
    return _clean_number(m.group(0)) if m else None


def _boxed_answer(inner: str) -> str | None:
    plain = _latex_to_plain(inner)
    m = _NUM_RE.fullmatch(plain.replace(" ", "")) or _NUM_RE.fullmatch(plain)
    if m:
        return _clean_number(m.group(0))
    # Something symbolic: keep it (bounded) for math-verify, or take a number inside it.
    if plain and len(plain) <= _MAX_SYMBOLIC_CHARS:
        return plain
    m = _NUM_RE.search(plain)
    return _clean_number(m.group(0)) if m else None


def _search_window(text: str) -> str:
    if len(text) <= 2 * _TAIL_CHARS:
        return text
    # Markers are usually near the end; a GSM8K-style "####" may be early when a model ran on
    # past its answer into an invented next turn, so the head is kept as well.
    return text[:_TAIL_CHARS] + "\n" + text[-_TAIL_CHARS:]


def extract_answer(text: str) -> str | None:
    """The final answer a model gave, normalized (``'18'``, ``'0.75'``, ``'3/4'``), or None.

    Order: the first ``#### N`` (the GSM8K format: anything after it is a model running on);
    else the last ``\\boxed{}``; else the last "final answer"/"the answer is"/"Answer:" marker;
    else the last number in the text.
    """
    if not text:
        return None
    text = _search_window(text.replace("\u2212", "-"))

    m = _GSM8K_MARK.search(text)
    if m:
        ans = _answer_after(text, m.end())
        if ans is not None:
            return ans
    boxes = list(_BOXED.finditer(text))
    for b in reversed(boxes):
        inner = _braced(text, b.end())
        if inner is not None:
            ans = _boxed_answer(inner)
            if ans is not None:
                return ans
    for phrase in _PHRASES:
        hits = list(phrase.finditer(text))
        for hit in reversed(hits):
            ans = _answer_after(text, hit.end())
            if ans is not None:
                return ans
    last = None
    for last in _NUM_RE.finditer(_latex_to_plain(text[-_TAIL_CHARS:])):
        pass
    return _clean_number(last.group(0)) if last else None


def reference_answer(reference: str) -> str | None:
    """The answer of a reference: a bare answer, or a GSM8K-style solution ending in ``#### N``."""
    if "####" in reference:
        return _answer_after(reference, reference.rindex("####") + 4)
    plain = _latex_to_plain(reference.strip())
    m = _NUM_RE.fullmatch(plain.replace(" ", ""))
    if m:
        return _clean_number(m.group(0))
    if "\\" in plain and len(plain) <= _MAX_SYMBOLIC_CHARS:
        return plain  # symbolic, e.g. \sqrt{8}, compared by math-verify
    return extract_answer(reference)


def _as_fraction(s: str) -> Fraction | None:
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def _terminates(f: Fraction) -> bool:
    d = f.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def _numbers_match(cand: str, ref: str) -> bool | None:
    """True/False when both are numbers; None when either is not."""
    c, r = _as_fraction(cand), _as_fraction(ref)
    if c is None or r is None:
        return None
    if c == r:
        return True
    # 1/3 has no exact decimal: accept a decimal of >= 2 places that is its rounding.
    if "." in cand and "/" not in cand and not _terminates(r):
        places = len(cand.split(".", 1)[1])
        if places >= 2:
            q = Decimal(1).scaleb(-places)
            rounded = (Decimal(r.numerator) / Decimal(r.denominator)).quantize(q, ROUND_HALF_UP)
            return Decimal(cand) == rounded
    return False


_SAFE_SYMBOLIC = re.compile(r"[0-9a-zA-Z\\{}()+\-*/.,\s]+")


def _symbolic_match(cand: str, ref: str) -> bool:
    """math-verify on two short expressions; exponents are refused so sympy cannot blow up."""
    for s in (cand, ref):
        if len(s) > _MAX_SYMBOLIC_CHARS or "^" in s or "**" in s or "!" in s or not _SAFE_SYMBOLIC.fullmatch(s):
            return False
    from math_verify import parse, verify  # imported lazily: pulls in sympy (~1 s)

    # Its timeouts are off on purpose (see module docstring); silence its warning about that.
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.ERROR)

    gold = parse(f"${ref}$", parsing_timeout=None)
    pred = parse(f"${cand}$", parsing_timeout=None)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=None))


def is_correct(candidate: str, reference: str) -> bool:
    """Whether a model's text ``candidate`` reaches the answer of ``reference``.

    ``reference`` is a bare answer (``"18"``, ``"3/4"``) or a GSM8K-style solution ending in
    ``#### N``. No extractable answer in the candidate is always False.
    """
    ref = reference_answer(reference)
    cand = extract_answer(candidate)
    if ref is None or cand is None:
        return False
    numeric = _numbers_match(cand, ref)
    if numeric is not None:
        return numeric
    return _symbolic_match(cand, ref)
