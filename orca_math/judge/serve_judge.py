"""The judge service: an autoscaled pool of Serve replicas around ``judge_items``.

Over HTTP::

    POST {base_url}/judge   {"items": [{"question": .., "reference": .., "candidate": ..}, ...]}
    -> {"verdicts": [{"correct": true, "method": "exact", "extracted": "18", "error": null}, ...],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0}, "errors": 0}

From Ray (e.g. a Ray Data ``map_batches`` UDF), without HTTP::

    handle = judge_handle()                              # serve.get_app_handle("orca-judge")
    verdicts = judge_batch_via_handle(handle, items)     # or: await handle.judge.remote(items)
    # the judge stage's Ray Data UDF: JudgeBatches in orca_math/judge/stage.py

Every item goes through one ``@serve.batch`` method, so items from many small requests are
judged together, and autoscaling follows the requests in flight per replica. A verdict with
``error`` set (``correct`` is null) was not judged: count it neither right nor wrong.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import Annotated, Any, Sequence

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from ray import serve

from orca_math.judge.config import JudgeConfig, JudgeServeConfig
from orca_math.judge.core import JudgeItem, Verdict, judge_items
from orca_math.teacher.client import TeacherClient
from orca_math.teacher.config import TeacherConfig
from orca_math.teacher.serving import SHUTDOWN_S, delete_app, deploy_and_wait, start_serve_http

log = logging.getLogger(__name__)

JUDGE_APP = "orca-judge"
# llm-mode batches wait on the network, so several run at once; exact ones are CPU-bound
# and gain nothing from this, but lose nothing either. (Serve warns that max_batch_size x this
# exceeds max_ongoing_requests: it assumes one item per request, but ours carry many.)
_CONCURRENT_BATCHES = 8


class JudgeRequest(BaseModel):
    """The body of ``POST /v1/judge``: the items, all three fields strings; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")  # also on each item: a misspelt field is a 422, not dropped
    items: list[JudgeItem]


app = FastAPI(title="orca-math judge", docs_url=None, redoc_url=None, openapi_url=None)
# auto_error=False: without a configured token the judge is open, and with one a refusal is our 401.
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


async def _read_body(request: Request, max_bytes: int) -> bytes:
    # Ours, not a FastAPI body parameter: FastAPI reads the whole body before anything else runs.
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"body: {declared} bytes, at most {max_bytes} per request")
    body = bytearray()
    async for chunk in request.stream():  # chunked uploads have no Content-Length: count as we go
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"body: more than {max_bytes} bytes per request")
    return bytes(body)


def parse_judge_request(body: bytes, max_items: int) -> list[JudgeItem]:
    """The items of a /v1/judge body; HTTPException (400/413/422) naming the bad field otherwise."""
    try:
        items = JudgeRequest.model_validate_json(body).items
    except ValidationError as e:
        first = e.errors()[0]
        if first["type"] == "json_invalid":
            raise HTTPException(400, f"body: not valid JSON ({first['msg']})") from None
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
        raise HTTPException(422, f"{field or 'body'}: {first['msg']}") from None
    if len(items) > max_items:
        raise HTTPException(413, f"items: {len(items)} items, at most {max_items} per request")
    return items


def _as_item(raw: Any, index: int) -> JudgeItem:
    if isinstance(raw, JudgeItem):
        return raw
    try:
        return JudgeItem(str(raw["question"]), str(raw["reference"]), str(raw["candidate"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"items[{index}]: needs question, reference and candidate ({e!r})") from None


@serve.deployment(name="Judge")
@serve.ingress(app)
class JudgeDeployment:
    """One judge replica: HTTP routes plus the ``judge`` handle method, both over one batch queue."""

    def __init__(self, judge_cfg: JudgeConfig, serve_cfg: JudgeServeConfig, teacher_cfg: TeacherConfig | None,
                 secrets: dict[str, SecretStr]):
        self.cfg, self.serve_cfg = judge_cfg, serve_cfg
        self._auth_token = secrets.get("auth_token")
        if teacher_cfg is not None and teacher_cfg.api_key_env and "teacher_api_key" in secrets:
            # The replica may run on a node whose environment lacks the key the driver had.
            os.environ.setdefault(teacher_cfg.api_key_env, secrets["teacher_api_key"].get_secret_value())
        self.teacher = TeacherClient(teacher_cfg, stage="judge") if teacher_cfg is not None else None
        self._judge_batched.set_max_batch_size(serve_cfg.max_batch_size)
        self._judge_batched.set_batch_wait_timeout_s(serve_cfg.batch_wait_timeout_s)

    def _authorize(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        if self._auth_token is not None and (credentials is None or not hmac.compare_digest(
                credentials.credentials.encode(), self._auth_token.get_secret_value().encode())):
            raise HTTPException(401, "authorization: missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    @serve.batch(max_batch_size=256, batch_wait_timeout_s=0.005, max_concurrent_batches=_CONCURRENT_BATCHES)
    async def _judge_batched(self, items: list[JudgeItem]) -> list[Verdict]:
        return await judge_items(items, self.cfg, self.teacher)

    async def judge(self, items: Sequence[dict[str, Any] | JudgeItem]) -> list[dict[str, Any]]:
        """Handle method: verdict dicts (correct, method, extracted, error, prompt/completion tokens), in order."""
        parsed = [_as_item(raw, i) for i, raw in enumerate(items)]
        verdicts = await asyncio.gather(*(self._judge_batched(item) for item in parsed))
        return [v.to_dict() for v in verdicts]

    @app.post("/v1/judge")
    async def judge_http(self, request: Request, credentials: BearerCredentials) -> dict[str, Any]:
        self._authorize(credentials)
        body = await _read_body(request, self.serve_cfg.max_request_bytes)
        items = parse_judge_request(body, self.serve_cfg.max_items_per_request)
        verdicts = await self.judge(items)
        return {
            "verdicts": [{k: v[k] for k in ("correct", "method", "extracted", "error")} for v in verdicts],
            "usage": {"prompt_tokens": sum(v["prompt_tokens"] for v in verdicts),
                      "completion_tokens": sum(v["completion_tokens"] for v in verdicts)},
            "errors": sum(v["error"] is not None for v in verdicts),
        }

    @app.get("/v1/health")
    async def health(self, credentials: BearerCredentials) -> dict[str, str]:
        self._authorize(credentials)
        return {"status": "ok", "method": self.cfg.method}


def _secrets(serve_cfg: JudgeServeConfig, teacher_cfg: TeacherConfig | None) -> dict[str, SecretStr]:
    secrets: dict[str, SecretStr] = {}
    if serve_cfg.auth_token_env:
        token = os.environ.get(serve_cfg.auth_token_env)
        if not token:
            raise ValueError(f"serve.judge.auth_token_env: env var {serve_cfg.auth_token_env} is not set")
        secrets["auth_token"] = SecretStr(token)
    if teacher_cfg is not None and teacher_cfg.api_key_env and os.environ.get(teacher_cfg.api_key_env):
        secrets["teacher_api_key"] = SecretStr(os.environ[teacher_cfg.api_key_env])
    return secrets


def build_judge_app(judge_cfg: JudgeConfig, serve_cfg: JudgeServeConfig, teacher_cfg: TeacherConfig | None = None):
    """The judge Serve application. ``teacher_cfg`` is required unless ``judge_cfg.method`` is exact."""
    if judge_cfg.method != "exact" and teacher_cfg is None:
        raise ValueError(f"judge.method {judge_cfg.method!r} needs a teacher config (the `teacher:` section)")
    return JudgeDeployment.options(
        autoscaling_config={
            "min_replicas": serve_cfg.min_replicas,
            "initial_replicas": max(serve_cfg.min_replicas, 1),
            "max_replicas": max(serve_cfg.max_replicas, serve_cfg.min_replicas),
            "target_ongoing_requests": serve_cfg.target_ongoing_requests,
            "upscale_delay_s": serve_cfg.upscale_delay_s,
            "downscale_delay_s": serve_cfg.downscale_delay_s,
        },
        max_ongoing_requests=serve_cfg.max_ongoing_requests,
        ray_actor_options={"num_cpus": serve_cfg.num_cpus},
    ).bind(judge_cfg, serve_cfg, teacher_cfg, _secrets(serve_cfg, teacher_cfg))


def start_judge(judge_cfg: JudgeConfig | None = None, serve_cfg: JudgeServeConfig | None = None,
                teacher_cfg: TeacherConfig | None = None, host: str = "127.0.0.1", port: int = 8000,
                app_name: str = JUDGE_APP) -> str:
    """Deploy the judge on the current Ray instance (started locally if needed); return its base URL (``.../v1``).

    POST ``{base_url}/judge``. Waits at most ``serve_cfg.readiness_timeout_s`` for it to answer.
    Several judges (say exact and llm) can run at once under different ``app_name`` and
    ``serve_cfg.route_prefix``; one of the same name is replaced.
    """
    from orca_math.common.ray_runtime import ensure_ray

    judge_cfg, serve_cfg = judge_cfg or JudgeConfig(), serve_cfg or JudgeServeConfig()
    application = build_judge_app(judge_cfg, serve_cfg, teacher_cfg)
    ensure_ray()
    base_url = start_serve_http(host, port) + serve_cfg.route_prefix.rstrip("/") + "/v1"
    headers = {}
    if serve_cfg.auth_token_env:
        headers["Authorization"] = f"Bearer {os.environ[serve_cfg.auth_token_env]}"
    deploy_and_wait(application, app_name, serve_cfg.route_prefix, serve_cfg.readiness_timeout_s,
                    ready_url=f"{base_url}/health", ready_headers=headers)
    log.info("judge (%s) ready at %s/judge", judge_cfg.method, base_url)
    return base_url


def ensure_judge_app(judge_cfg: JudgeConfig, serve_cfg: JudgeServeConfig | None = None,
                     teacher_cfg: TeacherConfig | None = None) -> str:
    """Start the judge app on the current Ray instance unless it runs; return its name."""
    if JUDGE_APP not in serve.status().applications:
        start_judge(judge_cfg, serve_cfg or JudgeServeConfig(), teacher_cfg)
    return JUDGE_APP


def stop_judge(app_name: str = JUDGE_APP) -> None:
    """Delete the judge app (Serve itself keeps running for other apps)."""
    serve.delete(app_name)


def release_judge() -> None:
    """Delete the judge app if it runs, and stop Serve if nothing else runs on it.

    Stages start the judge on first use; this leaves Serve as they found it, so a later
    ``serve.start`` in the same Ray instance (another app, another port) is not bound to ours.
    """
    import ray

    if not ray.is_initialized():
        return
    try:
        apps = serve.status().applications
    except RuntimeError:  # Serve was never started in this Ray instance
        return
    if JUDGE_APP in apps:
        delete_app(JUDGE_APP, SHUTDOWN_S)  # bounded: this also runs while a Ctrl-C stops the run
    elif not apps:
        serve.shutdown()


def judge_handle(app_name: str = JUDGE_APP):
    """A handle to the running judge, for calls from Ray tasks and actors."""
    return serve.get_app_handle(app_name)


def judge_batch_via_handle(handle, items: Sequence[dict[str, Any] | JudgeItem]) -> list[dict[str, Any]]:
    """Judge ``items`` through a Serve handle, blocking (for sync code such as a map_batches UDF).

    Items are dicts with question/reference/candidate (other keys ignored) or JudgeItems; the
    result is one verdict dict per item, in order. Async code: ``await handle.judge.remote(items)``.
    """
    return handle.judge.remote(list(items)).result()
