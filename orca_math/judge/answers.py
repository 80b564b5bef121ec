"""Answer checking: pull the final answer out of a model's text and compare it with a reference.

This decides every label the student learns from. A wrong answer labelled right poisons the
training data, so when the text is ambiguous the checker finds no answer (judged wrong) rather
than guess. It reads what GSM8K-style students and LaTeX-writing teachers (GPT-4-class APIs,
Qwen/Llama on vLLM) write; docs/judge.md says what it accepts, and where and why it parts from
math-verify's test suite (tests/fixtures/math_verify_numeric_cases.json).

Where the answer is, strongest first (R1 / open-r1 text: ``<think>...</think>`` is skipped, and
an ``<answer>...</answer>`` holds the answer, read by these same rules):

1. the first ``#### N`` line (GSM8K: the solution ends there, later text is a model running on);
2. the last ``\\boxed{}`` or "final answer is/:" marker (a later marker beats an earlier box,
   which is often intermediate working);
3. the last "the answer is" / ``Answer:`` marker;
4. the last number of the text.

Text after an invented next turn (``<|im_start|>``, ``USER:``...) is dropped first. The answer is
the whole expression around the number it was found by: ``$\\frac{1+\\sqrt{5}}{2}$`` is that
value, never ``2``; ``$(0,1)$`` is an interval, not ``1``; ``x = 5 + 3 = 8`` is ``8``. An
expression that runs on into a variable (``3x + 5``, ``\\boxed{y+1}``, ``2p - q + 7 = 0``) is
``SYMBOLIC``: an equation states its right-hand side only when its left-hand side is a bare name
(``x = 3``, ``total = $3``) or a calculation follows (``2*x = 2*6 = 12``). One token, not several
numbers: ``6.02e-05``, ``4.2\\times10^{-3}``, ``07:05`` (a time), ``3:4`` (a ratio), ``2 1/4``;
a unit's exponent (``36 m^2``) belongs to the unit.

Comparison: integers and fractions exactly (``Fraction``); when either side is written as a
decimal, both are rounded to ``float_rounding`` places (math-verify's rule, default 6) and must
also agree within ``rel_tol`` (Qwen2.5-Math's ``isclose`` tolerance, default 1e-4). Symbolic
leftovers (``2\\sqrt{2}``) are parsed by math-verify with its SIGALRM timeouts off (they fail
outside the main thread: Ray actors, Serve replicas) and then compared by numeric value here,
bounded by input size instead of a timer: short, exponent-free, variable-free expressions only.
Times compare as times (``07:05`` is ``07:05:00``), ratios in lowest terms.

``check_answer`` says True, False or None: None where the exact checker cannot decide (no answer
read, a symbolic one, a time against a number), which ``method: exact`` counts as wrong and
``exact_then_llm`` hands to the teacher. ``is_correct`` is ``check_answer(...) is True``.
"""

from __future__ import annotations

import logging
import re
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from functools import lru_cache
from itertools import islice
from math import gcd

__all__ = ["SYMBOLIC", "check_answer", "extract_answer", "is_correct", "normalize_number", "reference_answer"]

# The last number is looked for in the tail only, so every call stays fast on 100 KB of chatter;
# markers are searched in the whole text (plain regex scans, linear).
_TAIL_CHARS = 4000
_SPAN_CHARS = 400  # how far after a marker its answer may be
_MAX_SYMBOLIC_CHARS = 48
_FLOAT_ROUNDING = 6  # math-verify's verify(float_rounding=6)
_REL_TOL = 1e-4  # Qwen2.5-Math's numeric_equal: isclose(rel_tol=1e-4)

# --- numbers -------------------------------------------------------------------------------------

# A number in free text: "1,000.50", "3", ".5", "-7". Not glued to a word ("AZYUK2A", "x2") or to
# another number by a separator ("2,74" and "1000,99" are European decimals: no number at all).
_NUM_BODY = r"(?:[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d{0,2}(?:[\u2009\u202f]\d{3})+|\d+)(?:\.\d+)?|\.\d+"
# One token, not several numbers: "6.02e-05" (not -5), "07:05" or "7:05 pm" (a time, not 5), "3:4" (a ratio).
_SCI_SUFFIX = r"[eE][+-]?\d{1,3}(?!\d)"
_COLON_SUFFIX = r"(?::\d+)+(?:\s?[AaPp]\.?[Mm]\b\.?)?"
# The leading lookahead is only for speed: most positions of a text hold no number, and it fails
# there before the lookbehinds are tried.
_NUM_RE = re.compile(rf"(?=[-.\d])(?<![\w.,\u2009\u202f])(?<!\d[eE][+-])-?(?:{_NUM_BODY})(?:{_SCI_SUFFIX}|{_COLON_SUFFIX})?"
                     rf"(?![\d_])(?![.,\u2009\u202f]\d)")
_NUMBER_FULL = re.compile(rf"-?(?:{_NUM_BODY})(?:{_SCI_SUFFIX})?")
# "2 1/4" and "2\frac{1}{4}" are two and a quarter (math-verify reads the LaTeX one so too).
_MIXED_FULL = re.compile(r"(-?)(\d{1,3})(?:\s+(\d+)\s*/\s*(\d+)|\s*\\frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\})")
_CLOCK_FULL = re.compile(r"(\d{1,2}):(\d\d)(?::(\d\d))?(?:\s?([AaPp])\.?[Mm]\.?)?")
_RATIO_FULL = re.compile(r"\d+(?::\d+)+")
# A whole answer may group thousands with plain spaces ("1 000"); running prose may not ("5 300 g").
_SPACED_FULL = re.compile(r"-?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?")
_FRACTION_FULL = re.compile(rf"(-?)(?:\\frac\{{\s*({_NUM_BODY})\s*\}}\{{\s*({_NUM_BODY})\s*\}}|({_NUM_BODY})\s*/\s*({_NUM_BODY}))")

# For normalize_number only: a field already known to hold one number ("-$5", "$1,000.50").
_FIELD_NUM_RE = re.compile(r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|-?\$?\.\d+")


_NUMBER_NOISE = re.compile(r"[$,\s\u2009\u202f]")
_INTEGER = re.compile(r"-?[1-9]\d{0,17}|0")


def _clean_number(raw: str) -> str | None:
    """'$1,000.50' -> '1000.5', '3 / 4' -> '3/4', '18.00' -> '18'; None if not a number."""
    if _INTEGER.fullmatch(raw):
        return raw  # most answers: skip Decimal
    s = _NUMBER_NOISE.sub("", raw).replace("\u2212", "-").rstrip(".")
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
    m = _FIELD_NUM_RE.search(text.replace("\u2212", "-"))
    return _clean_number(m.group(0)) if m else None


# --- LaTeX to something regexes can read ----------------------------------------------------------

_UNIT_MARK = "\u2060"  # word joiner: "\text{ m}" is a unit, while a bare "m" in math is a variable


def _text_word(m: re.Match) -> str:
    """``\text{...}`` -> its words; a one-letter one marked as a unit word ("$5\text{ m}$" is 5)."""
    word = m.group(1).strip()
    return f" {_UNIT_MARK}{word} " if len(word) == 1 and word.isalpha() else f" {m.group(1)} "


_LATEX_SUBS = [
    (re.compile(r"\\[dtc]frac"), r"\\frac"),
    # \frac13, \frac3{3}, \frac{1}3, \sqrt3: math-verify reads these, so models write them.
    (re.compile(r"\\frac\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac\s*(\d)\s*\{"), r"\\frac{\1}{"),
    (re.compile(r"\\frac\s*(\{[^{}]*\})\s*(\d)"), r"\\frac\1{\2}"),
    (re.compile(r"\\sqrt\s*(\d+)"), r"\\sqrt{\1}"),
    # Thousands separators: 14{,}916, 14 {, }916, 10,\!000, 1\,000.
    (re.compile(r"(?<=\d)\s*\{\s*,\s*\}\s*(?=\d)"), ","),
    (re.compile(r"(?<=\d),\s*\\!\s*(?=\d)"), ","),
    (re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))"), ","),
    (re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}"), _text_word),
    (re.compile(r"\\(?:left|right|displaystyle|!)|\\(?:boxed|fbox)\s*(?=\{)"), ""),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\u00b0|\\degree"), ""),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\(?:cdot|times)(?![a-zA-Z])"), "*"),
    (re.compile(r"\\div(?![a-zA-Z])"), "/"),
    (re.compile(r"\\approx(?![a-zA-Z])|\u2248"), "\u2248"),
    (re.compile(r"\\pm(?![a-zA-Z])"), "\u00b1"),
    (re.compile(r"\\(?:leq?|leqslant)(?![a-zA-Z])"), "\u2264"),
    (re.compile(r"\\(?:geq?|geqslant)(?![a-zA-Z])"), "\u2265"),
    (re.compile(r"\\(?:neq?)(?![a-zA-Z])"), "\u2260"),
    (re.compile(r"\\(?:lt)(?![a-zA-Z])"), "<"),
    (re.compile(r"\\(?:gt)(?![a-zA-Z])"), ">"),
    (re.compile(r"\\[,;: ]|\\q?quad(?![a-zA-Z])|~"), " "),
    (re.compile(r"\*\*|__"), ""),  # markdown bold
]
# Applied after _LATEX_SUBS, to texts with a "^" only.
_POWER_SUBS = [
    # A unit's exponent is part of the unit: "36 m^2", "36\text{ cm}^2" are 36, not 2.
    (re.compile(r"(?<=\d)(\s*\u2060?(?:sq\.?\s*)?(?:[mcdk]?m|in|ft|yd|mi|(?:(?:centi|milli|kilo)?met(?:er|re)|inche|foot|feet|yard"
                r"|mile|unit)s?)\.?)\s*\^\s*(?:\{\s*[23]\s*\}|[23])(?!\.?\d)"),
     lambda m: m.group(1) if _UNIT_MARK in m.group(1) else re.sub(r"(?=[^\W\d_])", _UNIT_MARK, m.group(1), count=1)),
    # Scientific notation, once \times and \cdot are "*": "4.2*10^{-3}" -> "4.2e-3", one number.
    (re.compile(r"(\d+(?:\.\d+)?)\s*[*\u00d7\u00b7x]\s*10\s*\^\s*(?:\{\s*([+-]?\d{1,3})\s*\}|\(\s*([+-]?\d{1,3})\s*\)"
                r"|([+-]?\d{1,3}))(?!\.?\d)"), lambda m: f"{m.group(1)}e{m.group(2) or m.group(3) or m.group(4)}"),
]


# GSM8K's calculator annotations: "48/2 = <<48/2=24>>24" is 24.
_CALCULATOR = re.compile(r"<<[^<>\n]{0,200}>>")


def _normalize(text: str) -> str:
    """LaTeX and markdown rewritten to plain math: '14{,}916' -> '14,916', '\\frac13' -> '\\frac{1}{3}', '\\geq' -> '≥'."""
    if "<<" in text:
        text = _CALCULATOR.sub("", text)
    text = text.replace("\u2212", "-").replace("<=", "\u2264").replace(">=", "\u2265").replace("!=", "\u2260")
    if "\\" in text or "{" in text or "*" in text or "_" in text or "~" in text or "\u00b0" in text or "\u2248" in text:
        for pattern, repl in _LATEX_SUBS:
            text = pattern.sub(repl, text)
    if "^" in text:
        for pattern, repl in _POWER_SUBS:
            text = pattern.sub(repl, text)
    return text


# --- where the answer is ------------------------------------------------------------------------

# An invented next turn: chat-template tokens or a role line. Everything from there on is dropped.
_NEXT_TURN = re.compile(
    r"<\|(?:im_start|im_end|endoftext|end_of_text|eot_id|start_header_id|user|assistant)\|>|</s>|<(?:start|end)_of_turn>"
    r"|\n[ \t]*(?:USER|User|Human|HUMAN)[ \t]*:")
_GSM8K_MARK = re.compile(r"####[ \t]*([^\n]*)")
# What may follow a #### answer on its line: a few unit words. "#### 1. Understand the problem"
# (a markdown heading) is not an answer line.
_GSM8K_TAIL = re.compile(r"\s*(?:[^\W\d_]+\s*){0,3}\.?\s*")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FINAL_PHRASE = re.compile(r"final\s+answer[\s*_#]*(?:is\b|:|=|\n)", re.I)
# Two patterns, not one alternation: with "^" or "(?:^|\n)" in it, re tries every position (4x slower).
_THE_ANSWER_IS = re.compile(r"the\s+answer\s+is\b", re.I)
_ANSWER_LINE = re.compile(r"\n[ \t]*[*_#]*(?:answer|ans|a)[*_]*[ \t]*[:=]", re.I)
# Markers tried per kind: the answer is among the last few; a text of 10,000 "\boxed{" must stay fast.
_MAX_MARKERS = 16
_FILLER = re.compile(r"[\s*_:=]*(?:is\b)?[\s*_:=]*")

# Math segments, on normalized text. Inline $...$ is told from currency almost as pandoc does: the
# opening $ is followed by a non-space and no digit follows the closing one ("$5 and $6" is money).
_SEGMENT = re.compile(
    r"\$\$(.{1,800}?)\$\$|\\\[(.{1,800}?)\\\]|\\\((.{1,400}?)\\\)"
    r"|(?<![\\$])\$(?=[^\s$])([^$\n]{0,400}?[^$\\])\$(?![\d$])", re.S)
_PROSE_IN_MATH = re.compile(r"[^\W\d_]{2,}\s+[^\W\d_]{2,}\s+[^\W\d_]{2,}")
_COMMAND = re.compile(r"\\[a-zA-Z]+")

# Characters an expression is made of; letters only as part of a \command.
_RUN_CHARS = frozenset("0123456789.,+-*/^=\u2248\u00b1\u221a\u00d7\u00f7\u00b7()[]{}%$<>\u2264\u2265\u2260_ \t\u2009\u202f")
_MATH_RUN_CHARS = _RUN_CHARS | {"!"}  # in math, 5! is a factorial; in prose, an exclamation
_RUN_LIMIT = 200


def _braced(text: str, start: int) -> str | None:
    """Content of the brace group whose opening brace is just before ``start``."""
    depth = 1
    for i in range(start, min(len(text), start + _SPAN_CHARS)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def _segments(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of the math segments of ``text``; prose between two $ is not one."""
    found, pos = [], 0
    while True:
        m = _SEGMENT.search(text, pos)
        if m is None:
            return found
        content = next(g for g in m.groups() if g is not None)
        if m.group(4) is not None and _PROSE_IN_MATH.search(_COMMAND.sub(" ", content)):
            pos = m.start() + 1  # "$5 and the answer is $": two prices, not math
            continue
        found.append((m.start(), m.end(), content))
        pos = m.end()


def _run_around(text: str, start: int, end: int, math: bool) -> tuple[int, int]:
    """Bounds of the expression containing ``text[start:end]``: the run of math characters and \\commands around it."""
    allowed = _MATH_RUN_CHARS if math else _RUN_CHARS
    lo, hi = start, end
    while lo > 0 and start - lo < _RUN_LIMIT:
        c = text[lo - 1]
        if c in allowed:
            lo -= 1
        elif c.isalpha():
            j = lo - 1
            while j > 0 and text[j - 1].isalpha():
                j -= 1
            if j > 0 and text[j - 1] == "\\":
                lo = j - 1
            else:
                break
        else:
            break
    while hi < len(text) and hi - end < _RUN_LIMIT:
        c = text[hi]
        if c in allowed:
            hi += 1
        elif c == "\\" and hi + 1 < len(text) and text[hi + 1].isalpha():
            hi += 2
            while hi < len(text) and text[hi].isalpha():
                hi += 1
        else:
            break
    return lo, hi


def _pick_value(expr: str) -> str:
    """The value an equation chain states: 'x = 5+3 = 8' -> '8'; 'x = 1/3 ≈ 0.33' -> '1/3'."""
    if "=" in expr:
        expr = expr[expr.rindex("=") + 1:]
    if "\u2248" in expr:
        exact = expr.split("\u2248", 1)[0]
        expr = exact if any(c.isdigit() for c in exact) else expr.rsplit("\u2248", 1)[1]
    return expr


def _strip_brackets(expr: str) -> str:
    """Drop brackets the run took from around it: '(since 3 + 4 = 7)' -> '7', '(18)' -> '18', '(C) 18' -> '18'."""
    expr = expr.lstrip(")]} ").rstrip("([{ ")
    while expr and expr[-1] in ")]}" and expr.count(expr[-1]) > expr.count({")": "(", "]": "[", "}": "{"}[expr[-1]]):
        expr = expr[:-1].rstrip()
    while expr and expr[0] in "([{" and expr.count(expr[0]) > expr.count({"(": ")", "[": "]", "{": "}"}[expr[0]]):
        expr = expr[1:].lstrip()
    for o, c in ("()", "{}"):
        if len(expr) > 2 and expr[0] == o and expr[-1] == c and o not in expr[1:-1] and c not in expr[1:-1]:
            expr = expr[1:-1].strip()
    return expr


_JUXTAPOSED = re.compile(r"\d\s+\d")
_LETTER = re.compile(r"[^\W\d_]")
_RANGE = re.compile(r"\d-\d")

# An answer with a free variable: "3x + 5" for 5, "y+1" for 1, "2p - q + 7 = 0" for 0. The checker
# cannot say what it equals, so it reads this marker and says so (check_answer gives None).
SYMBOLIC = "\x00symbolic"
# A run of math characters stops at a plain letter; these at its edge mean the expression goes on
# into that letter ("x + 5", "5 + x", "\tan(t)=", "x^2", "\frac{1}{x}").
_OPEN_LEFT = frozenset("+-*/^=\u2248\u00b1\u00d7\u00f7\u00b7<>\u2264\u2265\u2260_)]}")  # "=", ")": see _has_variable
_OPEN_RIGHT = frozenset("+-*/^=\u2248\u00b1\u00d7\u00f7\u00b7<>\u2264\u2265\u2260_([{")
_ARTICLES = frozenset("aAI")  # one-letter English words: "a -5 degree drop", "12 - I think"
_BEFORE_A_TERM = frozenset("0123456789+-*/^=\u2248\u00b1\u00d7\u00f7\u00b7<>\u2264\u2265\u2260_)]}\\")


def _word_before(text: str, lo: int) -> tuple[int, int]:
    """Bounds of the run of letters ending at ``text[:lo]`` (spaces between skipped); (lo, lo) when none."""
    j = lo
    while j > 0 and text[j - 1] in " \t":
        j -= 1
    i = j
    while i > 0 and text[i - 1].isalpha():
        i -= 1
    return i, j


def _is_variable(text: str, i: int, j: int, dash: bool = False) -> bool:
    """Whether the letters ``text[i:j]`` are a one-letter name (``x``, the ``a`` of ``3a``), not a word.

    ``dash``: they meet the number at a "-", which between spaced words is prose ("a -5 drop").
    """
    if j - i != 1:
        return False
    if dash and text[i] in _ARTICLES:
        spaced_before = i == 0 or text[i - 1].isspace()
        spaced_after = j == len(text) or text[j].isspace()
        return not (spaced_before and spaced_after)
    return True


def _has_variable(text: str, lo: int, hi: int, math: bool) -> bool:
    """Whether the expression ``text[lo:hi]`` is part of a larger one with a variable, or an equation
    whose left-hand side is not a bare name (``x = 3``, ``Answer = 3``, ``total = $3`` are fine)."""
    # Most runs start with a digit and end at a word of several letters or at punctuation ("is 5
    # apples", "is 5."): decided at once, without a slice (this runs for every answer read).
    a = lo
    while a < hi and text[a] == " ":
        a += 1
    if a == hi:
        return False
    first = text[a]
    if first not in _OPEN_LEFT or lo == 0:
        if hi >= len(text):
            return False
        c = text[hi]
        if c.isalpha():
            if hi + 1 < len(text) and text[hi + 1].isalpha():
                return False  # a word, not a one-letter name
        elif c not in " \t":
            return False
    body = text[lo:hi].strip(" \t")
    if not body:
        return False
    i, j = _word_before(text, lo) if first in _OPEN_LEFT and lo > 0 else (lo, lo)
    if i < j:
        if first in "=\u2248":  # "x = 3", "x \\approx 11"
            return not (_bare_name(text, i, j) or _evaluated(text, i, j, hi, body))
        if first in ")]}":
            rest = body.lstrip(")]} \t")  # "\\tan(t)=..."; "(C) 18" is a label, "(12 mph + 10 mph)/2" prose
            return bool(rest) and (rest[0] in _OPEN_LEFT or rest[0] == "{") and _is_variable(text, i, j)
        if first in _OPEN_LEFT:
            if first == "/" and i > 0 and text[i - 1].isdigit():
                return False  # "240g/5", "12m/s": a unit
            # "q + 7 = 0", "x^2"; a longer word is a unit in prose ("35 arms + 14 arms = 49", "is -5")
            return first in "^_" or _is_variable(text, i, j, dash=first == "-")
    if hi + 1 < len(text) and text[hi].isalpha() and text[hi + 1].isalpha():
        return False  # a word, not a one-letter name
    k = hi
    while k < len(text) and text[k] in " \t":
        k += 1
    if k < len(text) and text[k].isalpha():
        if k + 1 < len(text) and text[k + 1].isalpha():
            return False
        e = k
        while e < len(text) and text[e].isalpha():
            e += 1
        if not _is_variable(text, k, e, dash=body[-1] == "-"):
            return False
        if body[-1] in _OPEN_RIGHT:
            return True
        n = e
        while n < len(text) and text[n] in " \t":
            n += 1
        if n < len(text) and text[n] in _OPEN_RIGHT and text[n] != "/":
            return True  # "3x + 5", "3 x = 6"; "3x faster", "5 m/s" and "5 m." are a number and a unit
        # In math a letter after a number is a variable ("$2x$", "$2 x$"); units there are \text{} words.
        return math
    return False


def _evaluated(text: str, i: int, j: int, hi: int, body: str) -> bool:
    """Whether an equation whose left-hand side ends in the letter ``text[i:j]`` states a value anyway:
    a calculation follows ("2*x = 2*6 = 12") or the letter is a unit on both sides ("3*4m = 12m")."""
    sides = body[1:].split("=")
    if len(sides) > 1 and any(c in sides[0] for c in "+-*/") and any(c.isdigit() for c in sides[0]):
        return True
    return (i > 0 and text[i - 1].isdigit() and not text[hi - 1].isspace() and text.startswith(text[i:j], hi)
            and not (hi + j - i < len(text) and text[hi + j - i].isalpha()))


def _bare_name(text: str, i: int, j: int) -> bool:
    """Whether the word ``text[i:j]`` stands alone as an equation's left-hand side: not a variable ending
    a term ("3x", "2 * x") nor the argument of a function ("\\sin x"). A longer word is a name
    ("total = $3") or, after a number, a unit ("14 arms = 49 arms", "12 beetles/snake = 1080")."""
    p = i
    while p > 0 and text[p - 1] in " \t":
        p -= 1
    if j - i == 1 and p > 0 and text[p - 1] in _BEFORE_A_TERM and not (p < i and text[p - 1].isdigit()) \
            and not (p == i > 1 and text[p - 1] == "/" and text[p - 2].isalpha()):
        return False  # "3x", "2 * x", "+ q"; "3 m = 300 cm" and "15 ml/g = 60 g" are units
    if p < i and p > 0 and text[p - 1].isalpha():
        q = p - 1
        while q > 0 and text[q - 1].isalpha():
            q -= 1
        return not (q > 0 and text[q - 1] == "\\")
    return True


def _clock_or_ratio(expr: str) -> str | None:
    """'7:05' -> '07:05:00', '7:05 pm' -> '07:05:00 pm', '3:4' -> '3:4' (a ratio); None if neither."""
    m = _CLOCK_FULL.fullmatch(expr)
    if m:
        h, mi, sec, half = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), m.group(4)
        if mi < 60 and sec < 60 and (1 <= h <= 12 if half else h <= 24):
            return f"{h:02d}:{mi:02d}:{sec:02d}" + (f" {half.lower()}m" if half else "")
    if _RATIO_FULL.fullmatch(expr):
        return ":".join(str(int(f)) for f in expr.split(":"))
    return None


def _classify(expr: str, whole: bool, prose: bool = False) -> str | None:
    """An expression -> a normalized number ('18', '3/4', '25%'), a short symbolic string, or None.

    ``whole``: the expression is all of an answer (a box, a math segment, a bare reference), so
    "1 000" is one number; in running prose it is two. ``prose``: "10-15" is a range, not -5.
    """
    expr = _pick_value(expr).replace("\\$", "$").replace("$", " ")
    if prose and _RANGE.search(expr):
        return None
    expr = _strip_brackets(expr.strip(" \t,;:").rstrip(".")).strip(" \t,;:").rstrip(".")
    percent = expr.endswith("%")
    if percent:
        expr = expr[:-1].rstrip()
    if not expr or "%" in expr:
        return None
    if expr.startswith("-"):
        expr = "-" + expr[1:].lstrip()
    suffix = "%" if percent else ""
    if _NUMBER_FULL.fullmatch(expr) or (whole and _SPACED_FULL.fullmatch(expr)):
        value = _clean_number(expr)
        return value + suffix if value is not None else None
    m = _FRACTION_FULL.fullmatch(expr)
    if m:
        num, den = (m.group(2), m.group(3)) if m.group(2) is not None else (m.group(4), m.group(5))
        value = _clean_number(f"{m.group(1)}{num}/{den}")
        return value + suffix if value is not None else None
    m = _MIXED_FULL.fullmatch(expr)
    if m:
        num, den = (m.group(3), m.group(4)) if m.group(3) is not None else (m.group(5), m.group(6))
        if 0 < int(num) < int(den):  # "2 5/4" is not how anyone writes a number
            value = int(m.group(2)) + Fraction(int(num), int(den))
            return _clean_number(f"{m.group(1)}{value.numerator}/{value.denominator}") + suffix
    if ":" in expr:
        return _clock_or_ratio(expr) if not percent else None
    if percent or _JUXTAPOSED.search(expr) or len(expr) > _MAX_SYMBOLIC_CHARS:
        return None  # "5 3": two numbers side by side, not one expression
    if not any(c in expr for c in "+-*/^\\(\u00b1\u221a,!"):
        return None
    if any(expr.count(o) != expr.count(c) for o, c in ("()", "{}", "[]")):
        return None  # a piece of something larger, cut where the run stopped
    return expr


def _answer_in(content: str, bare: bool = False) -> str | None:
    """The answer a box or math segment holds: its one expression (unit words around it are fine).

    ``bare``: ``content`` is a whole text that must start with its answer ("1 000 apples", not
    "She has 10-15 minutes").
    """
    text = _normalize(content).replace("\n", " ")
    nums = list(_NUM_RE.finditer(text))
    if not nums:
        return _classify(text, whole=True) if "\\" in text else None  # \sqrt{x}, \pi: symbolic or nothing
    lo, hi = _run_around(text, nums[0].start(), nums[0].end(), math=True)
    if _has_variable(text, lo, hi, math=True):
        return SYMBOLIC
    if nums[-1].end() > hi:
        return None  # numbers in two places ("12 and 13"): not one answer
    if bare and _LETTER.search(_COMMAND.sub("", text[:lo])):
        return None
    # "1 000" is one number only when nothing but it is there ("I have 5 300 g" is two).
    return _classify(text[lo:hi], whole=not text[:lo].strip(" $"))


def _answer_at(text: str, m: re.Match) -> str | None:
    """The answer the number ``m`` of normalized ``text`` belongs to: its math segment, or its prose run."""
    lo = max(0, m.start() - 2 * _SPAN_CHARS)
    window = text[lo:m.end() + _SPAN_CHARS]
    if "$" in window or "\\" in window:
        for start, end, content in _segments(window):
            if start <= m.start() - lo < end:
                return _answer_in(content)
    lo, hi = _run_around(text, m.start(), m.end(), math=False)
    if _has_variable(text, lo, hi, math=False):
        return SYMBOLIC
    return _classify(text[lo:hi], whole=False, prose=True)


_CONTENT = re.compile(r"[\w\\$]")
_NEGATION = re.compile(r"not\b|n't\b", re.I)


def _answer_after(text: str, pos: int) -> str | None:
    """The answer right after a marker ending at ``pos``: a box, a math segment or a number on that line."""
    span = text[pos:pos + _SPAN_CHARS]
    span = span[_FILLER.match(span).end():]
    first_line = span.split("\n", 1)[0]
    if not _CONTENT.search(first_line):  # a heading ("**Final Answer**"): the answer is below it
        span = span[len(first_line):].lstrip()
    line = span.split("\n", 1)[0]
    if _NEGATION.match(line):
        return None
    box = _BOXED.match(line)
    if box:
        inner = _braced(line, box.end())
        return _answer_in(inner) if inner is not None else None
    line = _normalize(line)
    m = _NUM_RE.search(line)
    return _answer_at(line, m) if m else None


def _gsm8k_answer(line: str) -> str | None:
    """The answer of a ``#### N`` line, or None when the line is not one (a markdown heading, empty)."""
    line = line.strip()
    box = _BOXED.match(line)
    if box:
        inner = _braced(line, box.end())
        return _answer_in(inner) if inner is not None else None
    line = _normalize(line)
    m = _NUM_RE.search(line)
    if not m or line[:m.start()].strip(" $") != "":
        return None
    lo, hi = _run_around(line, m.start(), m.end(), math=False)
    if _has_variable(line, lo, hi, math=False):
        return SYMBOLIC
    hi = lo + len(line[lo:hi].rstrip(" \t."))  # "1. Understand the problem": the period is the heading's
    if not _GSM8K_TAIL.fullmatch(line[hi:]):
        return None
    return _classify(line[lo:hi], whole=False)


def _strip_wrappers(text: str) -> str:
    """'$9$' -> '9', '\\boxed{5}' -> '5', '\\[ 1/3 \\]' -> '1/3' when the wrapper is the whole text."""
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(opener) and text.endswith(closer) and len(text) > len(opener) + len(closer):
            inner = text[len(opener):-len(closer)]
            if opener not in inner:
                text = inner.strip()
                break
    box = _BOXED.match(text)
    if box and _braced(text, box.end()) == text[box.end():-1]:
        text = text[box.end():-1].strip()
    return text


# Callers ask twice about the same text (judge_exact and the eval stage call is_correct, then
# extract_answer); references repeat across a problem's samples. Small caches, bounded memory.
@lru_cache(maxsize=64)
def _final_answer(text: str) -> str | None:
    """Internal form of extract_answer: keeps a trailing '%' so that 18% can also equal 0.18."""
    if not text or not text.strip():
        return None
    text = text.replace("\u2212", "-")
    # R1 / open-r1: the reasoning sits in <think>...</think> (the prompt may hold the opening tag);
    # an unclosed one is reasoning cut off before any answer.
    if "<" in text and "think>" in text:
        end = text.find("</think>")
        text = text[end + 8:] if end >= 0 else text[:max(text.find("<think>"), 0)]
    cut = _NEXT_TURN.search(text, 1)
    if cut:
        text = text[:cut.start()]
    if "<" in text and "<answer>" in text:  # the final-answer marker of the R1 format: the answer is what it holds
        start = text.rindex("<answer>") + 8
        end = text.find("</answer>", start)
        return _final_answer(text[start:end if end >= 0 else len(text)])
    ans = _marked_or_last(text)
    if ans is None and len(text) <= 200 and "####" not in text and not _BOXED.search(text):
        ans = _answer_in(_strip_wrappers(text.strip()), bare=True)  # the whole text is the answer: "1 000"
    return ans


def _marked_or_last(text: str) -> str | None:
    """The answer at the strongest marker (see the module docstring), else at the last number."""
    if "####" in text:
        for m in islice(_GSM8K_MARK.finditer(text), _MAX_MARKERS):
            ans = _gsm8k_answer(m.group(1))
            if ans is not None:
                return ans  # the solution ends here; whatever follows is a model running on

    # Substring checks first: most texts have no marker, and they are cheaper than a regex scan.
    says_answer = "answer" in text.lower()
    strong = []
    if "\\boxed" in text or "\\fbox" in text:
        strong += [(b.start(), b.end(), True) for b in _BOXED.finditer(text)][-_MAX_MARKERS:]
    if says_answer:
        strong += [(p.start(), p.end(), False) for p in _FINAL_PHRASE.finditer(text)][-_MAX_MARKERS:]
    for _, end, is_box in sorted(strong, reverse=True)[:_MAX_MARKERS]:
        if is_box:
            inner = _braced(text, end)
            if inner is None or not inner.strip():
                continue
            return _answer_in(inner)  # unreadable last box: no answer, not an earlier one
        ans = _answer_after(text, end)
        if ans is not None:
            return ans
    weak = [p.end() for p in _THE_ANSWER_IS.finditer(text)][-_MAX_MARKERS:] if says_answer else []
    # A leading "\n" lets the first line count too; it shifts positions by one.
    weak += [p.end() - 1 for p in _ANSWER_LINE.finditer("\n" + text)][-_MAX_MARKERS:]
    for end in sorted(weak, reverse=True)[:_MAX_MARKERS]:
        ans = _answer_after(text, end)
        if ans is not None:
            return ans

    tail = _normalize(text[-_TAIL_CHARS:])
    last = None
    for last in _NUM_RE.finditer(tail):
        pass
    return _answer_at(tail, last) if last else None


def extract_answer(text: str) -> str | None:
    """The final answer a model gave, normalized (``'18'``, ``'0.75'``, ``'3/4'``, ``'2\\sqrt{2}'``), or None.

    See the module docstring for where it is looked for. None means no single answer could be
    read, which is_correct counts as wrong.
    """
    ans = _final_answer(text)
    if ans is None or ans == SYMBOLIC:
        return None
    return ans[:-1] if ans.endswith("%") else ans


@lru_cache(maxsize=1024)
def _reference(reference: str) -> str | None:
    if "####" in reference:
        ans = _gsm8k_answer(reference[reference.rindex("####") + 4:].split("\n", 1)[0])
        if ans is not None:
            return ans
    return _final_answer(reference)


def reference_answer(reference: str) -> str | None:
    """The answer of a reference: a bare answer, or a GSM8K-style solution ending in ``#### N``."""
    ans = _reference(reference)
    if ans is None or ans == SYMBOLIC:
        return None
    return ans[:-1] if ans.endswith("%") else ans


# --- comparison ---------------------------------------------------------------------------------

def _as_fraction(s: str) -> Fraction | None:
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def _round(value: Fraction, places: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
            Decimal(1).scaleb(-places), ROUND_HALF_EVEN)


def _values_match(c: Fraction, r: Fraction, decimal: bool, float_rounding: int, rel_tol: float | None) -> bool:
    """Exact for integers and fractions; math-verify's rounding and Qwen2.5-Math's isclose when a decimal is involved."""
    if c == r:
        return True
    if not decimal:
        return False
    if _round(c, float_rounding) != _round(r, float_rounding):
        return False
    return rel_tol is None or abs(c - r) <= rel_tol * max(abs(c), abs(r))


def _numbers_match(cand: str, ref: str, float_rounding: int, rel_tol: float | None) -> bool | None:
    """True/False when both are numbers; None when either is not."""
    c_pct, r_pct = cand.endswith("%"), ref.endswith("%")
    c, r = _as_fraction(cand.rstrip("%")), _as_fraction(ref.rstrip("%"))
    if c is None or r is None:
        return None
    decimal = "." in cand or "." in ref
    pairs = [(c, r)]
    if c_pct != r_pct:  # 18% is 18 (how GSM8K answers percentages) and 0.18 (math-verify, Qwen2.5-Math)
        pairs.append((c / 100, r) if c_pct else (c, r / 100))
    return any(_values_match(a, b, decimal, float_rounding, rel_tol) for a, b in pairs)


_SAFE_SYMBOLIC = re.compile(r"[0-9a-zA-Z\\{}()+\-*/.,\s]+")


def _symbolic_match(cand: str, ref: str, float_rounding: int, rel_tol: float | None) -> bool | None:
    """Two short expressions compared by numeric value; None (undecided) unless both are numbers it can
    evaluate: exponents are refused so sympy stays quick, and a variable, set or interval has no value."""
    for s in (cand, ref):
        if len(s) > _MAX_SYMBOLIC_CHARS or "^" in s or "**" in s or not _SAFE_SYMBOLIC.fullmatch(s):
            return None
    from math_verify import parse  # imported lazily: pulls in sympy (~1 s)
    from sympy import Basic, Float, Rational

    # Its timeouts are off on purpose (see module docstring); silence its warning about that.
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.ERROR)

    parsed = []
    for s in (cand, ref):
        found = [e for e in parse(f"${s}$", parsing_timeout=None) if isinstance(e, Basic)]
        # Only numbers: a tuple, interval, set or anything with a variable is not a numeric answer.
        if not found or not found[0].is_number or found[0].free_symbols:
            return None
        parsed.append(found[0])
    c, r = parsed
    if isinstance(c, Rational) and isinstance(r, Rational):
        return c == r
    cv, rv = c.evalf(30), r.evalf(30)
    if not (cv.is_real and rv.is_real and cv.is_finite and rv.is_finite):
        return None
    cf, rf = Fraction(str(cv)), Fraction(str(rv))
    if c.has(Float) or r.has(Float):
        return _values_match(cf, rf, True, float_rounding, rel_tol)
    # Two exact irrationals (2\sqrt{2} and \sqrt{8}): equal to math-verify's numeric precision.
    return abs(cf - rf) <= Fraction(1, 10**15) * max(1, abs(rf))


_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(?: ([ap])m)?")


def _seconds(time: str) -> tuple[int, bool, bool] | None:
    """A canonical time -> (seconds after midnight, has am/pm, could be either half of the day)."""
    m = _TIME.fullmatch(time)
    if m is None:
        return None
    h, mi, sec, half = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    if half:
        h = h % 12 + (12 if half == "p" else 0)
    return h * 3600 + mi * 60 + sec, half is not None, half is None and 1 <= h <= 12


def _clock_or_ratio_match(cand: str, ref: str) -> bool | None:
    """Times as times ('07:05' is '7:05:00', not '09:05'); ratios in lowest terms ('6:8' is '3:4').
    None when one side is neither, or '7:05' meets '7:05 pm' (the first may mean either)."""
    ct, rt = _seconds(cand), _seconds(ref)
    if ct and rt:
        if ct[0] == rt[0]:
            return True
        if ct[1] != rt[1] and (ct[2] or rt[2]) and (ct[0] - rt[0]) % 43200 == 0:
            return None
        return False
    if ct or rt or not (_RATIO_FULL.fullmatch(cand) and _RATIO_FULL.fullmatch(ref)):
        return None
    c, r = [int(f) for f in cand.split(":")], [int(f) for f in ref.split(":")]
    c_gcd, r_gcd = gcd(*c) or 1, gcd(*r) or 1
    return [f // c_gcd for f in c] == [f // r_gcd for f in r]


def check_answer(candidate: str, reference: str, *, float_rounding: int = _FLOAT_ROUNDING,
                 rel_tol: float | None = _REL_TOL) -> bool | None:
    """Whether ``candidate`` reaches the answer of ``reference``: True, False, or None when the exact
    checker cannot decide.

    None: no answer can be read from one side, or one is symbolic (an expression with a variable,
    an equation whose left-hand side is not a bare name, a set, an interval, a time against a
    number). ``method: exact`` counts None as wrong; ``exact_then_llm`` asks the teacher.
    """
    return _check(candidate, reference, float_rounding, rel_tol)


def _check(candidate: str, reference: str, float_rounding: int, rel_tol: float | None) -> bool | None:
    ref = _reference(reference)
    cand = _final_answer(candidate)
    if ref is None or cand is None or ref == SYMBOLIC or cand == SYMBOLIC:
        return None
    if cand == ref:
        return True  # both normalized: the same string is the same value
    if ":" in cand or ":" in ref:
        return _clock_or_ratio_match(cand, ref)
    numeric = _numbers_match(cand, ref, float_rounding, rel_tol)
    if numeric is not None:
        return numeric
    return _symbolic_match(cand.rstrip("%"), ref.rstrip("%"), float_rounding, rel_tol)


def is_correct(candidate: str, reference: str, *, float_rounding: int = _FLOAT_ROUNDING,
               rel_tol: float | None = _REL_TOL) -> bool:
    """Whether a model's text ``candidate`` reaches the answer of ``reference``; ``check_answer``'s
    undecided (None) is False.

    ``reference`` is a bare answer (``"18"``, ``"3/4"``, ``"$\\frac{1}{3}$"``) or a solution
    (GSM8K ``#### N``, or a boxed one). No extractable answer in either is always False.
    ``float_rounding``/``rel_tol``: the tolerance when a decimal is involved (see module docstring).
    """
    return _check(candidate, reference, float_rounding, rel_tol) is True
