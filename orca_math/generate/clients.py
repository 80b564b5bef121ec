"""AutoGen's model client on the one teacher client, and the per-flow meter the flows wrap it in.

The flows talk to any ``autogen_core`` ``ChatCompletionClient``: the replay client in tests, in
production :func:`autogen_model_client`, AutoGen's face of :class:`~orca_math.teacher.TeacherClient`
(the same client the judge uses: its in-flight bound, retries, timeouts, key-free errors and
per-stage usage). On top of either:

- :class:`MeteredChatClient` (one per flow run) counts requests and tokens into the flow's
  :class:`~orca_math.teacher.TeacherUsage` and remembers whether a failure was the endpoint
  *rejecting this request* (HTTP 400/413/422, e.g. a prompt over the context length) or something
  transient (timeouts, 5xx, connection errors, already retried by the openai client). Rejected
  requests quarantine their candidate; anything else fails the batch, which is then not committed
  and is redone on the next run.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Literal, Mapping, Optional, Sequence, Union

from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelInfo, RequestUsage
from autogen_core.tools import Tool, ToolSchema

# Private modules, used so the endpoint sees exactly the requests AutoGen's own OpenAI client sent.
from autogen_ext.models._utils.normalize_stop_reason import normalize_stop_reason
from autogen_ext.models.openai._model_info import get_info
from autogen_ext.models.openai._openai_client import to_oai_type
from pydantic import BaseModel

from orca_math.teacher.client import TeacherClient, TeacherError, TeacherUsage
from orca_math.teacher.config import TeacherConfig


def is_rejected_request(error: BaseException) -> bool:
    """True when the endpoint refused this particular request (bad input), not when it is down."""
    return isinstance(error, TeacherError) and error.rejected


def plain_model_info(family: str = "unknown") -> ModelInfo:
    """AutoGen ModelInfo for a plain-text chat model (no tools, JSON mode or images)."""
    return {"vision": False, "function_calling": False, "json_output": False,
            "family": family, "structured_output": False}


def model_info_of(cfg: TeacherConfig) -> ModelInfo:
    """``cfg.autogen_model_info``; else AutoGen's table for OpenAI model names; else a plain-text
    model (what a vLLM/Serve-hosted open model is by default)."""
    if cfg.autogen_model_info is not None:
        return cfg.autogen_model_info  # type: ignore[return-value]
    try:
        return get_info(cfg.model)
    except ValueError:
        return plain_model_info()


class TeacherModelClient(ChatCompletionClient):
    """An AutoGen ``ChatCompletionClient`` whose every request is a :meth:`TeacherClient.chat`.

    Plain chat only (the flows use no tools, JSON mode or streaming). ``extra_create_args``
    (e.g. ``{"temperature": 0.7}``) override the teacher config's sampling for one request.
    Closing it closes the teacher's connection pool on the current event loop.
    """

    def __init__(self, teacher: TeacherClient, model_info: ModelInfo):
        self.teacher = teacher
        self._model_info = model_info
        self._usage = RequestUsage(prompt_tokens=0, completion_tokens=0)

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: Optional[bool | type[BaseModel]] = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: Optional[CancellationToken] = None,
    ) -> CreateResult:
        if tools or json_output:
            raise ValueError("the teacher model client sends plain chat: no tools, no JSON output")
        family = self._model_info["family"]
        oai_messages = [m for msg in messages for m in to_oai_type(msg, model=self.teacher.cfg.model,
                                                                   model_family=family)]
        future = asyncio.ensure_future(self.teacher.chat(oai_messages, **extra_create_args))
        if cancellation_token is not None:
            cancellation_token.link_future(future)
        result = await future
        usage = RequestUsage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
        self._usage = RequestUsage(prompt_tokens=self._usage.prompt_tokens + usage.prompt_tokens,
                                   completion_tokens=self._usage.completion_tokens + usage.completion_tokens)
        return CreateResult(finish_reason=normalize_stop_reason(result.finish_reason), content=result.text,
                            usage=usage, cached=False)

    def create_stream(self, messages: Sequence[LLMMessage], **kwargs: Any) -> AsyncGenerator[Union[str, CreateResult], None]:
        raise NotImplementedError("the AgentInstruct flows do not stream")

    async def close(self) -> None:
        await self.teacher.aclose()

    def actual_usage(self) -> RequestUsage:
        return self._usage

    def total_usage(self) -> RequestUsage:
        return self._usage

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        # The flows keep whole contexts and never ask; the endpoint counts the tokens it bills.
        raise NotImplementedError("the teacher model client does not count tokens locally")

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        raise NotImplementedError("the teacher model client does not count tokens locally")

    @property
    def capabilities(self):  # type: ignore[override]
        return self._model_info

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info


def autogen_model_client(cfg: TeacherConfig, stage: str = "default") -> TeacherModelClient:
    """AutoGen's model client for this teacher: a :class:`TeacherClient` (same endpoint, key, retries,
    timeout, in-flight bound) counting its usage under ``stage``."""
    return TeacherModelClient(TeacherClient(cfg, stage), model_info_of(cfg))


class MeteredChatClient(ChatCompletionClient):
    """Counts requests/tokens into ``usage`` and triages failures (see module docstring).

    ``extra_create_args`` (e.g. ``{"temperature": 0.7}``) are added to every request, so one
    shared endpoint client can serve agents that need different sampling. It does not own
    ``inner``: closing it leaves ``inner`` open for the other flows.
    """

    def __init__(self, inner: ChatCompletionClient, usage: TeacherUsage | None = None,
                 extra_create_args: Mapping[str, Any] | None = None):
        self.inner = inner
        self.usage = usage if usage is not None else TeacherUsage()
        self.extra_create_args = dict(extra_create_args or {})
        self.rejected: BaseException | None = None
        self.failed: BaseException | None = None

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:  # type: ignore[override]
        if self.extra_create_args:
            kwargs["extra_create_args"] = {**self.extra_create_args, **kwargs.get("extra_create_args", {})}
        self.usage.requests += 1
        try:
            result = await self.inner.create(messages, **kwargs)
        except Exception as e:
            if is_rejected_request(e):
                self.usage.rejected_requests += 1
                self.rejected = e
            else:
                self.failed = e
            raise
        self.usage.prompt_tokens += result.usage.prompt_tokens
        self.usage.completion_tokens += result.usage.completion_tokens
        return result

    def raise_unless_rejected(self, error: BaseException) -> BaseException:
        """Re-raise a failure unless it was a rejected request; return the rejection otherwise.

        What gets raised is the original, typed exception this client saw (AutoGen teams would
        have turned it into ``RuntimeError(str)``).
        """
        if self.rejected is not None and self.failed is None:
            return self.rejected
        if self.failed is not None:
            raise self.failed from error
        raise error

    def create_stream(self, messages: Sequence[LLMMessage], **kwargs: Any) -> AsyncGenerator[Union[str, CreateResult], None]:
        # The flows never stream; refusing keeps the metering honest.
        raise NotImplementedError("the AgentInstruct flows do not stream")

    async def close(self) -> None:
        return None

    def actual_usage(self) -> RequestUsage:
        return self.inner.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self.inner.total_usage()

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self.inner.count_tokens(messages, tools=tools)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self.inner.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self):  # type: ignore[override]
        return self.inner.model_info

    @property
    def model_info(self) -> ModelInfo:
        return self.inner.model_info
