"""Where the teacher lives and how hard we may push it."""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from orca_math.config import StageConfig


class TeacherConfig(StageConfig):
    """An OpenAI-compatible chat endpoint. The API key is read from the env var named here,
    so the key itself never enters a config file, a manifest, a log or a Parquet file."""

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
