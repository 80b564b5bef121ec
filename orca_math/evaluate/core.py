"""Evaluation: greedy pass@1 of a model on a problem set, as pure functions over records."""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

from orca_math.common.records import StageOutput, quarantine_row
from orca_math.judge.config import JudgeConfig
from orca_math.judge.core import JudgeItem, judge_items_sync


def data_hash(problems: list[dict]) -> str:
    """Hash of the evaluated set (ids and answers), so results name exactly what they measured."""
    h = hashlib.sha256()
    for p in sorted(problems, key=lambda p: p["id"]):
        h.update(f"{p['id']}\x1f{p['reference_answer']}\n".encode())
    return h.hexdigest()[:16]


Judge = Callable[[Sequence[dict]], list[dict]]  # items (question, reference, candidate) -> verdict dicts


def judge_exact_in_process(items: Sequence[dict]) -> list[dict]:
    """The judge's exact method without the service (for pure callers and tests)."""
    return [v.to_dict() for v in judge_items_sync(
        [JudgeItem(i["question"], i["reference"], i["candidate"]) for i in items], JudgeConfig(method="exact"))]


def score_samples(problems: list[dict], samples: list[dict], model: str,
                  judge: Judge = judge_exact_in_process) -> StageOutput:
    """Eval-result rows: each problem's first sample, judged against its reference answer.

    A problem without a sample (the engine dropped it) or whose sample the judge could not decide
    (teacher error) is quarantined, never counted as right or silently left out of the denominator.
    """
    by_problem: dict[str, dict] = {}
    for s in sorted(samples, key=lambda s: s["sample_index"]):
        by_problem.setdefault(s["problem_id"], s)
    out = StageOutput(rows_in=len(problems))
    answered = []
    for p in problems:
        s = by_problem.get(p["id"])
        if s is None:
            out.quarantined.append(quarantine_row("eval", p["source"], None, "completion", "no sample returned", p))
        else:
            answered.append((p, s))
    verdicts = judge([{"question": p["question"], "reference": p["reference_answer"], "candidate": s["text"]}
                      for p, s in answered]) if answered else []
    for (p, s), v in zip(answered, verdicts, strict=True):
        row = {
            "problem_id": p["id"],
            "model": model,
            "question": p["question"],
            "reference_answer": p["reference_answer"],
            "completion": s["text"],
            "extracted_answer": v["extracted"],
            "correct": v["correct"],
            "method": v["method"],
            "completion_tokens": s.get("completion_tokens"),
        }
        if v.get("error") is not None or v["correct"] is None:
            out.quarantined.append(quarantine_row("eval", "judge", None, "correct", f"not judged: {v.get('error')}", row))
        else:
            out.rows.append(row)
    return out.check_counts()


def accuracy(results: list[dict], n_total: int | None = None) -> float:
    """Pass@1 over ``n_total`` problems (quarantined ones count as wrong)."""
    n = n_total if n_total is not None else len(results)
    return sum(r["correct"] for r in results) / n if n else 0.0
