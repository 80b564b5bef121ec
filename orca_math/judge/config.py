"""Judge configs: how answers are judged (``judge:``) and how the judge service is deployed (``serve: judge:``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orca_math.common.config import StageConfig

JudgeMethod = Literal["exact", "llm", "exact_then_llm"]


class JudgeConfig(StageConfig):
    """How one (question, reference, candidate) item is judged.

    ``exact``: the answer checker (orca_math.judge.answers), fast and free. ``llm``: the paper's
    "GPT-4-based exact match", the teacher compares final answers and replies
    ``Final Verdict: Correct|Incorrect`` (Orca-Math used it to label practice samples).
    ``exact_then_llm``: the checker, and the teacher only where it cannot decide (no answer
    could be extracted from the candidate or the reference).
    """

    method: JudgeMethod = Field("exact", description="exact | llm | exact_then_llm.")
    llm_attempts: int = Field(3, ge=1, description="Teacher replies tried per item before an unparseable verdict is an error.")
    retry_temperature: float = Field(
        0.7, ge=0, description="Temperature for re-asking after an unparseable reply (the same greedy request would repeat it).")
    llm_max_tokens: int = Field(512, ge=16, description="Room for the error analysis and the verdict line.")


class JudgeServeConfig(StageConfig):
    """The judge deployment on Ray Serve: an autoscaled pool of replicas with request batching."""

    # Verdicts do not depend on how the deployment is sized or reached.
    execution_fields = frozenset(
        {"min_replicas", "max_replicas", "target_ongoing_requests", "upscale_delay_s", "downscale_delay_s",
         "max_ongoing_requests", "num_cpus", "max_batch_size", "batch_wait_timeout_s", "max_items_per_request",
         "max_request_bytes", "auth_token_env", "readiness_timeout_s", "route_prefix"})

    min_replicas: int = Field(1, ge=0, description="Autoscaling: fewest replicas.")
    max_replicas: int = Field(8, ge=1, description="Autoscaling: most replicas.")
    target_ongoing_requests: float = Field(2, gt=0, description="Autoscaling: requests per replica to aim for.")
    upscale_delay_s: float = Field(30, ge=0, description="Load must stay high this long before adding replicas.")
    downscale_delay_s: float = Field(600, ge=0, description="Load must stay low this long before removing replicas.")
    max_ongoing_requests: int = Field(32, ge=1, description="Requests one replica takes at once (more are queued).")
    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per replica.")
    max_batch_size: int = Field(256, ge=1, description="@serve.batch: items judged together.")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="@serve.batch: wait this long to fill a batch.")
    max_items_per_request: int = Field(4096, ge=1, description="Larger HTTP requests get 413.")
    max_request_bytes: int = Field(64 * 2**20, ge=1024, description="Larger HTTP bodies get 413 before they are read.")
    auth_token_env: str | None = Field(None, description="Env var holding a bearer token required on every route; None: open.")
    readiness_timeout_s: float = Field(120, gt=0, description="Give up (and clean up) if not serving by then.")
    route_prefix: str = Field("/", description="HTTP prefix; the route is <prefix>/v1/judge.")
