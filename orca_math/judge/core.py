"""Judging a student's answer: the pure functions behind the judge service and stage (no Ray in here).

    verdicts = await judge_items(items, JudgeConfig(method="exact_then_llm"), teacher=TeacherClient(...))

Each item is (question, reference, candidate); each verdict is (correct, method, extracted,
error). A verdict with ``error`` set has ``correct=None``: the item was NOT judged (the teacher
failed, or kept replying without a parseable ``Final Verdict``), and callers must not count it
either way. Nothing is ever guessed. ``judge_requests`` and ``judgments_from_verdicts`` turn the
judge stage's samples into items and its verdicts into judgment rows (undecided ones quarantined).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from orca_math.common.records import StageOutput, quarantine_row
from orca_math.judge.answers import check_answer, extract_answer
from orca_math.judge.config import JudgeConfig
from orca_math.teacher.client import TeacherClient, TeacherError

__all__ = ["JUDGE_SYSTEM_PROMPT", "JudgeItem", "Verdict", "judge_exact", "judge_items", "judge_items_sync",
           "judge_messages", "judge_requests", "judgments_from_verdicts", "parse_verdict"]

# The Orca-Math paper's "GPT4-based exact match" instruction, verbatim in substance.
JUDGE_SYSTEM_PROMPT = (
    "As an expert Math teacher, your role is to evaluate a student's answer to a word problem. "
    "The problem is accompanied by a correct solution provided by the problem setter. It is important "
    "to remember that there may be various methods to solve a word problem, so the student's steps "
    "might not always align with those in the problem setter's solution. However, the final answer, "
    "typically a number, should be unique and match the problem setter's answer. Your task involves "
    "analyzing the student's solution to identify any mistakes and determine whether the answer can be "
    "modified to correct the answer. If the student's answer is unfixable, consider creating practice "
    "problems to help improve their understanding.\n\n"
    "Use the following format:\n"
    "Error Analysis: In one sentence, extract the final answer from the problem setter's solution and "
    "compare it with the student's answer. Do they match?\n"
    "Final Verdict: Correct/Incorrect"
)
JUDGE_USER_TEMPLATE = "Question: {question}\n\nProblem Setter's answer: {reference}\n\nStudent answer: {candidate}"

# One verdict, decorated as real models decorate it and nothing more: markdown (**, #, >, `, a table
# cell), trailing punctuation or a check mark, LaTeX from math models ($\boxed{\text{Correct}}$),
# the word on the line below a "Final Verdict:" heading. "Correct/Incorrect" (the format line
# echoed back), "Partially correct", "Not correct" or "Correct, but ..." do not parse: ambiguous.
_VERDICT_LINE = re.compile(
    r"^[^\w\n]*final\s+verdict[^\w\n]*(?::|\n)[^\w]*(?:(?:boxed|text|textbf|mathrm|mathbf)[^\w]*)*"
    r"(correct|incorrect)[^\w\n]*$", re.I | re.M)


@dataclass(frozen=True)
class JudgeItem:
    """One thing to judge: the problem, the reference (answer or full solution), the student's text."""

    question: str
    reference: str
    candidate: str


@dataclass(frozen=True)
class Verdict:
    """The judgment of one item; ``correct is None`` exactly when ``error`` is set (not judged)."""

    correct: bool | None
    method: str  # exact | llm
    extracted: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_exact(item: JudgeItem) -> Verdict:
    """The answer checker's verdict: the candidate's extracted final answer against the reference's.

    What the checker cannot decide (no answer read, a symbolic one: see docs/judge.md) is wrong here.
    """
    return Verdict(correct=check_answer(item.candidate, item.reference) is True, method="exact",
                   extracted=extract_answer(item.candidate))


def _exact_can_decide(item: JudgeItem) -> bool:
    return check_answer(item.candidate, item.reference) is not None


def judge_messages(item: JudgeItem) -> list[dict[str, str]]:
    """The chat sent to the teacher for one item."""
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": JUDGE_USER_TEMPLATE.format(
            question=item.question, reference=item.reference, candidate=item.candidate)},
    ]


def parse_verdict(reply: str) -> bool | None:
    """True/False from a ``Final Verdict: Correct|Incorrect`` line; None if absent, ambiguous or contradictory.

    The same verdict restated (models often close with it twice) counts once.
    """
    verdicts = {m.group(1).lower() for m in _VERDICT_LINE.finditer(reply or "")}
    if len(verdicts) != 1:
        return None
    return verdicts.pop() == "correct"


async def _judge_llm(item: JudgeItem, cfg: JudgeConfig, teacher: TeacherClient) -> Verdict:
    extracted = extract_answer(item.candidate)
    prompt_tokens = completion_tokens = 0
    replies: list[str] = []
    for attempt in range(cfg.llm_attempts):
        kwargs: dict[str, Any] = {"max_tokens": cfg.llm_max_tokens}
        if attempt > 0:
            kwargs["temperature"] = cfg.retry_temperature
        try:
            result = await teacher.chat(judge_messages(item), stage="judge", **kwargs)
        except TeacherError as e:
            return Verdict(None, "llm", extracted, error=str(e),
                           prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        prompt_tokens += result.prompt_tokens
        completion_tokens += result.completion_tokens
        verdict = parse_verdict(result.text)
        if verdict is not None:
            return Verdict(verdict, "llm", extracted,
                           prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        replies.append(result.text)
    last = replies[-1][-300:] if replies else ""
    return Verdict(None, "llm", extracted,
                   error=f"no parseable 'Final Verdict: Correct|Incorrect' in {len(replies)} teacher replies; "
                         f"last reply ends: {last!r}",
                   prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def _needs_llm(item: JudgeItem, cfg: JudgeConfig) -> bool:
    return cfg.method == "llm" or (cfg.method == "exact_then_llm" and not _exact_can_decide(item))


async def judge_items(items: Iterable[JudgeItem], cfg: JudgeConfig, teacher: TeacherClient | None = None) -> list[Verdict]:
    """Verdicts for ``items``, in order. LLM calls run concurrently (bounded by the teacher client).

    ``teacher`` is required when ``cfg.method`` may use the LLM; a missing teacher is a
    ValueError up front, not a per-item error.
    """
    items = list(items)
    llm_indices = [i for i, item in enumerate(items) if _needs_llm(item, cfg)]
    if llm_indices and teacher is None:
        raise ValueError(f"judge method {cfg.method!r} needs a teacher for {len(llm_indices)} item(s); none given")
    verdicts: list[Verdict | None] = [None] * len(items)
    llm_set = set(llm_indices)
    for i, item in enumerate(items):
        if i not in llm_set:
            verdicts[i] = judge_exact(item)
    if llm_indices:
        results = await asyncio.gather(*(_judge_llm(items[i], cfg, teacher) for i in llm_indices))
        for i, verdict in zip(llm_indices, results):
            verdicts[i] = verdict
    return verdicts  # type: ignore[return-value]


def judge_items_sync(items: Iterable[JudgeItem], cfg: JudgeConfig, teacher: TeacherClient | None = None) -> list[Verdict]:
    """``judge_items`` for code without an event loop."""
    return asyncio.run(judge_items(items, cfg, teacher))


def judge_requests(samples: list[dict], problems: list[dict] | Mapping[str, dict]) -> StageOutput:
    """Samples -> rows carrying what the judge needs; samples of unknown problems are quarantined.

    ``problems``: a list, or a mapping id -> problem (question, reference_answer).
    """
    by_id = problems if isinstance(problems, Mapping) else {p["id"]: p for p in problems}
    out = StageOutput(rows_in=len(samples))
    for s in samples:
        p = by_id.get(s["problem_id"])
        if p is None:
            out.quarantined.append(quarantine_row("judge", "samples", None, "problem_id", "unknown problem", s))
            continue
        out.rows.append({"sample_id": s["sample_id"], "problem_id": s["problem_id"], "question": p["question"],
                         "reference": p["reference_answer"], "candidate": s["text"]})
    return out.check_counts()


def judgments_from_verdicts(requests: list[dict], verdicts: list[dict]) -> StageOutput:
    """Judgment rows, one per decided request; undecided ones are quarantined with the judge's error."""
    if len(requests) != len(verdicts):
        raise ValueError(f"{len(requests)} requests but {len(verdicts)} verdicts")
    out = StageOutput(rows_in=len(requests))
    for r, v in zip(requests, verdicts):
        if v.get("error") is not None or v.get("correct") is None:
            out.quarantined.append(quarantine_row("judge", "judge", None, "correct", f"not judged: {v.get('error')}", r))
            continue
        out.rows.append({"sample_id": r["sample_id"], "problem_id": r["problem_id"], "correct": bool(v["correct"]),
                         "method": v["method"], "extracted_answer": v.get("extracted")})
    return out.check_counts()
