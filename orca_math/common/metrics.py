"""Stage progress as Ray metrics, so the dashboard's Prometheus/Grafana view can chart a run.

Defined as ``orca_math_<name>``: rows_processed, rows_quarantined, teacher_tokens, judge_verdicts
(tag ``correct``), accuracy (tag ``model``), stage_running (1 while a stage runs). Prometheus shows
them as ``ray_orca_math_<name>``, counters with a ``_total`` suffix.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _metrics():
    from ray.util.metrics import Counter, Gauge

    return {
        "rows": Counter("orca_math_rows_processed", "Rows a stage produced.", tag_keys=("stage",)),
        "quarantined": Counter("orca_math_rows_quarantined", "Rows a stage quarantined.", tag_keys=("stage",)),
        "tokens": Counter("orca_math_teacher_tokens", "Teacher tokens used.", tag_keys=("stage", "kind")),
        "verdicts": Counter("orca_math_judge_verdicts", "Judge verdicts.", tag_keys=("stage", "correct")),
        "accuracy": Gauge("orca_math_accuracy", "Latest GSM8K pass@1.", tag_keys=("stage", "model")),
        "running": Gauge("orca_math_stage_running", "1 while the stage runs.", tag_keys=("stage",)),
    }


def stage_started(stage: str) -> None:
    _metrics()["running"].set(1, tags={"stage": stage})


def stage_finished(stage: str, entry: dict) -> None:
    """Export what the manifest entry of a finished stage says."""
    m = _metrics()
    tags = {"stage": stage}
    m["running"].set(0, tags=tags)
    if entry.get("rows_out"):
        m["rows"].inc(entry["rows_out"], tags=tags)
    if entry.get("rows_quarantined"):
        m["quarantined"].inc(entry["rows_quarantined"], tags=tags)
    for kind, n in (entry.get("teacher_tokens") or {}).items():
        if isinstance(n, (int, float)) and n:
            m["tokens"].inc(n, tags={"stage": stage, "kind": str(kind)})
    if stage.startswith("judge") and entry.get("rows_out") is not None:
        right = entry.get("correct", 0)
        for label, n in (("true", right), ("false", entry["rows_out"] - right)):
            if n:
                m["verdicts"].inc(n, tags={"stage": stage, "correct": label})
    if entry.get("accuracy") is not None:
        m["accuracy"].set(entry["accuracy"], tags={"stage": stage, "model": str((entry.get("inputs") or {}).get("model"))})
