"""The ``serve:`` section: how the long-running Ray Serve apps (teacher, judge) are deployed."""

from __future__ import annotations

from pydantic import Field

from orca_math.common.config import StageConfig
from orca_math.judge.config import JudgeServeConfig
from orca_math.teacher.serve_teacher import TeacherServeConfig


class ServeConfig(StageConfig):
    """The ``serve:`` section: one subsection per service."""

    teacher: TeacherServeConfig = Field(default_factory=TeacherServeConfig, description="Self-hosted teacher.")
    judge: JudgeServeConfig = Field(default_factory=JudgeServeConfig, description="Judge replica pool.")
