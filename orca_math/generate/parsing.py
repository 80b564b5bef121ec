"""Strict parsers for the teacher's replies (formats are defined in ``prompts.py``).

Each parser either returns what it found or raises :class:`ReplyParseError` naming the field and
what was wrong; nothing is guessed. Tolerated noise is limited to what chat models add without
changing meaning: markdown emphasis around labels, any letter case in labels, blank lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orca_math.generate.prompts import (
    ANSWER_LABEL,
    PROBLEM_LABEL,
    QUESTION_LABEL,
    STATEMENT_LABEL,
    UNSOLVABLE_MARK,
)
from orca_math.judge.answers import normalize_number


class ReplyParseError(ValueError):
    """A teacher reply that does not follow the format it was asked for."""

    def __init__(self, field: str, detail: str):
        self.field, self.detail = field, detail
        super().__init__(f"{field}: {detail}")


class Unsolvable(ValueError):
    """The solver said the problem cannot be solved."""


# A label at the start of a line: "QUESTION 2:", "**Answer 2**:", "statement :".
_LABEL = re.compile(
    rf"^[ \t>#*_]*({STATEMENT_LABEL}|{QUESTION_LABEL}|{ANSWER_LABEL}|{PROBLEM_LABEL})"
    r"(?:[ \t]+(\d+))?[ \t*_]*:[ \t*_]*",
    re.IGNORECASE | re.MULTILINE,
)
_FINAL_ANSWER_LINE = re.compile(r"^[ \t]*####[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_SUGGESTION_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[-*\u2022])[ \t]+(\S.*)$", re.MULTILINE)
# A bare answer may carry a unit or currency ("$12", "48 clips") but only one number token.
_NUMBER_TOKEN = re.compile(r"\d+(?:[.,/]\d+)*")


@dataclass
class LabeledBlock:
    label: str  # upper-cased label
    number: int | None
    text: str


def labeled_blocks(reply: str) -> list[LabeledBlock]:
    """Split a reply into ``LABEL [n]: text`` blocks; text runs until the next label line."""
    matches = list(_LABEL.finditer(reply))
    blocks = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(reply)
        text = reply[m.end():end].strip().strip("*_").strip()
        blocks.append(LabeledBlock(m.group(1).upper(), int(m.group(2)) if m.group(2) else None, text))
    return blocks


def parse_answer_text(text: str) -> str:
    """A bare numeric answer ('48', '$1,200', '0.5', '3/4', '48 clips') -> normalized string."""
    text = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not text:
        raise ReplyParseError("answer", "is empty")
    value = normalize_number(text)
    if value is None or len(_NUMBER_TOKEN.findall(text)) != 1:
        raise ReplyParseError("answer", f"not a single number: {text[:60]!r}")
    return value


@dataclass
class GeneratedQuestion:
    number: int
    question: str
    answer: str  # normalized number the question was written to ask for


@dataclass
class RejectedItem:
    number: int | None
    field: str
    detail: str
    raw: str


@dataclass
class AskMeAnythingReply:
    statement: str
    questions: list[GeneratedQuestion] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)


def parse_ask_me_anything(reply: str) -> AskMeAnythingReply:
    """``STATEMENT: ...`` then ``QUESTION k: ...`` / ``ANSWER k: ...`` pairs, numbered from 1.

    A reply with no statement or no question raises ReplyParseError. Otherwise every pair that
    is incomplete, repeated or has a non-numeric answer becomes a RejectedItem, and the good
    pairs are returned.
    """
    blocks = labeled_blocks(reply or "")
    statements = [b for b in blocks if b.label == STATEMENT_LABEL]
    if not statements or not statements[0].text:
        raise ReplyParseError("statement", "no 'STATEMENT:' line")
    if len(statements) > 1:
        raise ReplyParseError("statement", f"{len(statements)} 'STATEMENT:' lines, expected one")
    questions: dict[int, list[str]] = {}
    answers: dict[int, list[str]] = {}
    out = AskMeAnythingReply(statement=statements[0].text)
    for b in blocks:
        if b.label not in (QUESTION_LABEL, ANSWER_LABEL):
            continue
        if b.number is None:
            out.rejected.append(RejectedItem(None, b.label.lower(), f"'{b.label}:' without a number", b.text))
            continue
        (questions if b.label == QUESTION_LABEL else answers).setdefault(b.number, []).append(b.text)
    if not questions:
        raise ReplyParseError("question", "no 'QUESTION k:' lines")
    for n in sorted(set(questions) | set(answers)):
        qs, ans = questions.get(n, []), answers.get(n, [])
        raw = "\n".join([f"QUESTION {n}: {q}" for q in qs] + [f"ANSWER {n}: {a}" for a in ans])
        if len(qs) > 1 or len(ans) > 1:
            out.rejected.append(RejectedItem(n, "question", f"number {n} used more than once", raw))
        elif not qs or not qs[0]:
            out.rejected.append(RejectedItem(n, "question", f"ANSWER {n} has no QUESTION {n}", raw))
        elif not ans:
            out.rejected.append(RejectedItem(n, "answer", f"QUESTION {n} has no ANSWER {n}", raw))
        else:
            try:
                out.questions.append(GeneratedQuestion(n, qs[0], parse_answer_text(ans[0])))
            except ReplyParseError as e:
                out.rejected.append(RejectedItem(n, e.field, e.detail, raw))
    return out


def parse_suggestions(reply: str) -> list[str]:
    """The Suggester's numbered (or bulleted) list; at least one item."""
    items = [m.group(1).strip() for m in _SUGGESTION_ITEM.finditer(reply or "")]
    if not items:
        raise ReplyParseError("suggestions", "no numbered suggestions")
    return items


def parse_edited_problem(reply: str) -> str:
    """The Editor's single ``PROBLEM: ...`` line (the text may wrap onto following lines)."""
    blocks = [b for b in labeled_blocks(reply or "") if b.label == PROBLEM_LABEL]
    if not blocks:
        raise ReplyParseError("question", "no 'PROBLEM:' line")
    if len(blocks) > 1:
        raise ReplyParseError("question", f"{len(blocks)} 'PROBLEM:' lines, expected one")
    if not blocks[0].text:
        raise ReplyParseError("question", "'PROBLEM:' is empty")
    return blocks[0].text


@dataclass
class Solution:
    text: str  # step-by-step text ending in "#### <answer>"
    answer: str  # normalized


def parse_solution(reply: str) -> Solution:
    """A step-by-step solution whose last line is ``#### <number>``.

    Raises Unsolvable when the solver answered UNSOLVABLE, ReplyParseError when there is no
    final-answer line or its answer is not a number. Anything after the first ``####`` line is
    dropped (models that finished tend to keep talking).
    """
    reply = (reply or "").strip()
    m = _FINAL_ANSWER_LINE.search(reply)
    if m is None:
        if UNSOLVABLE_MARK in reply.upper():
            raise Unsolvable(reply[:200])
        raise ReplyParseError("reference_solution", "no final '#### <answer>' line")
    try:
        answer = parse_answer_text(m.group(1))
    except ReplyParseError as e:
        raise ReplyParseError("reference_solution", f"'####' line: {e.detail}") from e
    steps = reply[: m.start()].rstrip()
    text = f"{steps}\n#### {answer}" if steps else f"#### {answer}"
    return Solution(text=text, answer=answer)
