"""The judge: was the student's answer right? Exact answer checking, or the teacher as an LLM judge.

Pure functions in ``judging`` (``judge_items``), the Ray Serve service in ``serve_judge``
(``start_judge``, ``judge_batch_via_handle``), configs in ``config``.
"""

from orca_math.judge.config import JudgeConfig, JudgeServeConfig
from orca_math.judge.core import JudgeItem, Verdict, judge_exact, judge_items, judge_items_sync, parse_verdict

__all__ = ["JudgeConfig", "JudgeItem", "JudgeServeConfig", "Verdict", "judge_exact", "judge_items",
           "judge_items_sync", "parse_verdict"]
