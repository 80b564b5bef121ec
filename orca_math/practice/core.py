"""Practice as pure functions over records (no Ray in here): which problems a round takes, and
which of the student's samples are kept."""

from __future__ import annotations

import logging

from orca_math.common.records import StageOutput, quarantine_row

log = logging.getLogger(__name__)


def practice_slice(problems: list[dict], offset: int, limit: int | None) -> list[dict]:
    """``limit`` problems from ``offset`` on, wrapping around to the start when the set runs out."""
    if not problems:
        return []
    n = len(problems) if limit is None else min(limit, len(problems))
    start = offset % len(problems)
    return (problems[start:] + problems[:start])[:n]


def check_samples(problems: list[dict], samples: list[dict], n: int) -> StageOutput:
    """Keep every sample of a known problem; quarantine empty ones. Rows in = samples returned.

    A problem that came back with fewer than ``n`` samples is logged, not padded: the judge and
    the preference builder work per sample.
    """
    known = {p["id"] for p in problems}
    out = StageOutput(rows_in=len(samples))
    per_problem: dict[str, int] = {}
    for s in samples:
        if s["problem_id"] not in known:
            out.quarantined.append(quarantine_row("practice", "vllm", None, "problem_id", "unknown problem", s))
        elif not s["text"].strip():
            out.quarantined.append(quarantine_row("practice", "vllm", None, "text", "empty completion", s))
        else:
            out.rows.append(s)
            per_problem[s["problem_id"]] = per_problem.get(s["problem_id"], 0) + 1
    short = [pid for pid in known if per_problem.get(pid, 0) < n]
    if short:
        log.warning("practice: %d problems have fewer than %d usable samples", len(short), n)
    return out.check_counts()
