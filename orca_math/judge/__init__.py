"""The judge: was the student's answer right? Exact answer checking, or the teacher as an LLM judge.

``config.py`` (``JudgeConfig``, ``JudgeServeConfig``); ``answers.py`` (answer extraction and
comparison) and ``calculations.py`` (checking a solution's arithmetic steps); ``core.py``, the pure
functions (``judge_items``; samples -> requests, verdicts -> judgment rows); ``serve_judge.py``, the
Ray Serve app (``start_judge``, ``ensure_judge_app``, ``judge_batch_via_handle``); ``stage.py``, the
judge stage (samples streamed to the app); ``cli.py``, ``orca-math judge``.
"""

from orca_math.judge.config import JudgeConfig, JudgeServeConfig
from orca_math.judge.core import JudgeItem, Verdict, judge_exact, judge_items, judge_items_sync, parse_verdict

__all__ = ["JudgeConfig", "JudgeItem", "JudgeServeConfig", "Verdict", "judge_exact", "judge_items",
           "judge_items_sync", "parse_verdict"]
