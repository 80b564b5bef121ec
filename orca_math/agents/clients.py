"""Wrappers around an AutoGen model client: usage metering, a concurrency bound, error triage.

The flows talk to any ``autogen_core`` ``ChatCompletionClient``: the replay client in tests, an
``OpenAIChatCompletionClient`` on the teacher endpoint in production. Two thin wrappers add what
the pipeline needs without the flows knowing where replies come from:

- :class:`BoundedChatClient` (one per worker) caps requests in flight, so many seeds can run at
  once while the endpoint sees at most ``max_in_flight`` requests from this worker.
- :class:`MeteredChatClient` (one per flow run) counts requests and tokens for the manifest and
  remembers whether a failure was the endpoint *rejecting this request* (HTTP 400/413/422, e.g.
  a prompt over the context length) or something transient (timeouts, 5xx, connection errors,
  already retried by the openai client). Rejected requests quarantine their candidate; anything
  else fails the batch, which is then not committed and is redone on the next run.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, AsyncGenerator, Literal, Mapping, Optional, Sequence, Union

from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelInfo, RequestUsage
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

# Status codes that mean "this request can never succeed"; retrying or failing the batch is useless.
REJECTED_STATUS_CODES = frozenset({400, 413, 422})


def is_rejected_request(error: BaseException) -> bool:
    """True when the endpoint refused this particular request (bad input), not when it is down."""
    import openai

    return isinstance(error, openai.APIStatusError) and error.status_code in REJECTED_STATUS_CODES


@dataclass
class TeacherUsage:
    """Teacher requests and tokens spent by one flow (summed across seeds for the manifest)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rejected_requests: int = 0

    def add(self, other: "TeacherUsage") -> "TeacherUsage":
        """Add ``other`` into this one (in place) and return self."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.rejected_requests += other.rejected_requests
        return self

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> "TeacherUsage":
        return cls(**{k: int(v) for k, v in data.items()})


def merge_usage(into: dict[str, TeacherUsage], more: Mapping[str, TeacherUsage]) -> dict[str, TeacherUsage]:
    """Add per-flow usage ``more`` into ``into`` (in place)."""
    for flow, usage in more.items():
        into.setdefault(flow, TeacherUsage()).add(usage)
    return into


class _DelegatingClient(ChatCompletionClient):
    """Forwards everything to ``inner``; subclasses override ``create``."""

    def __init__(self, inner: ChatCompletionClient):
        self.inner = inner

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:  # type: ignore[override]
        return await self.inner.create(messages, **kwargs)

    def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: Optional[bool | type[BaseModel]] = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: Optional[CancellationToken] = None,
    ) -> AsyncGenerator[Union[str, CreateResult], None]:
        # The flows never stream; refusing keeps the metering honest.
        raise NotImplementedError("the AgentInstruct flows do not stream")

    async def close(self) -> None:
        # The inner client is shared and owned by whoever built it (see BoundedChatClient).
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


class BoundedChatClient(_DelegatingClient):
    """At most ``max_in_flight`` concurrent ``create`` calls on ``inner`` (one per worker process).

    It owns ``inner``: closing it closes ``inner``.

    The semaphore is created on first use so it binds to the event loop that runs the flows
    (Ray Data runs async UDFs on a loop of its own, not the one alive at construction).
    """

    def __init__(self, inner: ChatCompletionClient, max_in_flight: int):
        super().__init__(inner)
        self.max_in_flight = max_in_flight
        self._semaphore: asyncio.Semaphore | None = None

    async def close(self) -> None:
        """Close the wrapped client: this wrapper is the one owner of it."""
        await self.inner.close()

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:  # type: ignore[override]
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_in_flight)
        async with self._semaphore:
            return await self.inner.create(messages, **kwargs)


class MeteredChatClient(_DelegatingClient):
    """Counts requests/tokens into ``usage`` and triages failures (see module docstring).

    ``extra_create_args`` (e.g. ``{"temperature": 0.7}``) are added to every request, so one
    shared endpoint client can serve agents that need different sampling.
    """

    def __init__(self, inner: ChatCompletionClient, usage: TeacherUsage | None = None,
                 extra_create_args: Mapping[str, Any] | None = None):
        super().__init__(inner)
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
