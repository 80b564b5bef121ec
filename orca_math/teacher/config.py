"""Which teacher writes the problems, and where it lives: one config, a union on ``kind``.

``teacher: {kind: endpoint, base_url: ..., model: ...}`` (the default ``kind``, so files that
name no kind keep loading) is an OpenAI-compatible chat endpoint; ``teacher: {kind: procedural}``
is the symbolic world teacher (``orca_math/world/teacher.py``), which needs no endpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

from orca_math.common.config import StageConfig, load_stage_config, load_yaml


class TeacherConfig(StageConfig):
    """An OpenAI-compatible chat endpoint. The API key is read from the env var named here,
    so the key itself never enters a config file, a manifest, a log or a Parquet file."""

    # Where the model is served and how it is reached: the same model behind another URL writes
    # the same problems.
    execution_fields = frozenset({"base_url", "api_key_env", "max_in_flight", "max_retries", "timeout_s"})

    kind: Literal["endpoint"] = Field("endpoint", description="Selects this teacher (the default).")
    base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible /v1 base URL.")
    model: str = Field("gpt-4-turbo", description="Model name the endpoint serves (the paper used GPT-4-Turbo).")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Env var holding the API key; None for no key.")
    max_in_flight: int = Field(64, ge=1, description="Concurrent requests per worker process.")
    max_retries: int = Field(5, ge=0, description="Retries on 429/5xx/timeouts/connection errors.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout.")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(1024, ge=1)
    autogen_model_info: dict[str, Any] | None = Field(
        None,
        description="AutoGen ModelInfo (vision, function_calling, json_output, family, structured_output) "
        "for models AutoGen does not know by name; None: looked up by name, else a plain-text chat model.",
    )

    def api_key(self) -> str:
        """The key from the environment ('EMPTY' for keyless local servers)."""
        if not self.api_key_env:
            return "EMPTY"
        return os.environ.get(self.api_key_env) or "EMPTY"


class ProceduralTeacherConfig(StageConfig):
    """``teacher: {kind: procedural}``: the symbolic teacher instead of an LLM endpoint.

    Which flows run, how many Suggester+Editor rounds, and the solution length cap come from the
    ``generate:`` section like for the LLM teacher; only what is particular to programs is here.
    """

    kind: Literal["procedural"] = Field("procedural", description="Selects this teacher.")
    model: str = Field("procedural", description="Name written to provenance.teacher_model and the manifest.")
    suggestions_per_round: int = Field(2, ge=1, le=3, description="Edits the Suggester proposes (and the Editor applies) per round.")
    max_steps: int = Field(6, ge=1, description="'Add a step' is not suggested once a problem has this many arithmetic steps.")
    max_value: int = Field(10000, ge=10, description="No quantity of an edited problem may exceed this.")
    max_scale: int = Field(5, ge=2, description="Largest factor 'larger numbers' multiplies the amounts by.")
    seed: int = Field(0, ge=0, description="Seed of the teacher's choices (per seed and flow).")


TEACHER_KINDS: dict[str, type[StageConfig]] = {"endpoint": TeacherConfig, "procedural": ProceduralTeacherConfig}


def teacher_kind(value: Any) -> str:
    """The ``kind`` of a teacher section or config; a section that names none is an endpoint."""
    if isinstance(value, dict):
        return value.get("kind", "endpoint")
    return getattr(value, "kind", "endpoint")


AnyTeacherConfig = Annotated[
    Union[Annotated[TeacherConfig, Tag("endpoint")], Annotated[ProceduralTeacherConfig, Tag("procedural")]],
    Discriminator(teacher_kind),
]
"""A ``teacher:`` section: :class:`TeacherConfig` or :class:`ProceduralTeacherConfig`, chosen by ``kind``."""


def load_teacher_config(path: str | Path | None, section: str = "teacher") -> TeacherConfig | ProceduralTeacherConfig:
    """The teacher a config file's ``section`` names (the endpoint defaults without a file)."""
    raw = load_yaml(path).get(section) if path is not None else None
    cls = TEACHER_KINDS.get(teacher_kind(raw) if isinstance(raw, dict) else "endpoint", TeacherConfig)
    return load_stage_config(cls, path, section)
