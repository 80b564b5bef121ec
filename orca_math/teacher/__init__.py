"""The teacher: one OpenAI-compatible chat endpoint behind every generate/solve/judge call.

Public API: ``TeacherConfig`` (where the endpoint is), ``TeacherClient(cfg, stage).chat(messages)``
-> ``ChatResult(text, prompt_tokens, completion_tokens)``, ``client.usage()`` for the manifest,
``autogen_model_client(cfg)`` for AutoGen agents, and ``serve_teacher.start_teacher`` to host a
model yourself on Ray Serve.
"""

from orca_math.teacher.client import (
    ChatResult,
    TeacherClient,
    TeacherError,
    autogen_model_client,
    merge_usage,
    plain_model_info,
)
from orca_math.teacher.config import TeacherConfig

__all__ = ["ChatResult", "TeacherClient", "TeacherConfig", "TeacherError", "autogen_model_client",
           "merge_usage", "plain_model_info"]
