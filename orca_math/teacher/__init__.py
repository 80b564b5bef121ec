"""The teacher: one OpenAI-compatible chat endpoint behind every generate/solve/judge call.

Public API: ``TeacherConfig`` (where the endpoint is; ``AnyTeacherConfig`` adds the procedural
teacher, chosen by ``kind``), ``TeacherClient(cfg, stage).chat(messages)`` ->
``ChatResult(text, prompt_tokens, completion_tokens)``, ``client.usage()`` (per stage
``TeacherUsage``, summed with ``merge_usage``) for the manifest, and
``serve_teacher.start_teacher`` to host a model yourself on Ray Serve. AutoGen agents reach the
same client through ``orca_math.generate.clients.autogen_model_client``.
"""

from orca_math.teacher.client import ChatResult, TeacherClient, TeacherError, TeacherUsage, merge_usage
from orca_math.teacher.config import AnyTeacherConfig, ProceduralTeacherConfig, TeacherConfig, load_teacher_config

__all__ = ["AnyTeacherConfig", "ChatResult", "ProceduralTeacherConfig", "TeacherClient", "TeacherConfig",
           "TeacherError", "TeacherUsage", "load_teacher_config", "merge_usage"]
