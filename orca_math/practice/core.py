"""Practice as pure functions over records (no Ray in here): which problems a round takes
(``practice_ranges``), and which of the student's samples are kept (``check_samples``)."""

from __future__ import annotations

import logging

from orca_math.common.records import StageOutput, quarantine_row

log = logging.getLogger(__name__)


def practice_ranges(total: int, offset: int, limit: int | None) -> list[tuple[int, int]]:
    """The row ranges ``[lo, hi)`` a round takes from a set of ``total`` problems, in order.

    ``limit`` problems (all when None or larger than the set) from ``offset`` on, wrapping around
    to the start when the set runs out; the practice stage copies exactly these ranges.
    """
    if total == 0:
        return []
    n = total if limit is None else min(limit, total)
    start = offset % total
    return [(start, min(start + n, total))] + ([(0, start + n - total)] if start + n > total else [])


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
