"""The teacher client: async chat calls to any OpenAI-compatible endpoint, with token accounting.

    client = TeacherClient(cfg, stage="agent_instruct")
    result = await client.chat([{"role": "user", "content": "..."}])   # ChatResult
    client.usage()   # {"agent_instruct": TeacherUsage(requests=1, prompt_tokens=.., completion_tokens=..)}

Every stage that asks the teacher goes through this one client: the judge directly, the
AgentInstruct flows through the AutoGen model client built on it (``orca_math/generate/clients.py``).

Retries (429, 5xx, timeouts, dropped connections; exponential backoff with jitter, honouring
Retry-After) and the per-request timeout are the official ``openai`` client's, set from
TeacherConfig. This module adds what it lacks: a bound on requests in flight, per-stage token
counts, and one error type whose message never carries the API key.

Safe to use from many event loops (Ray Data async UDFs, ``asyncio.run`` in a loop): the
underlying connection pool and semaphore are created once per event loop.
"""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import openai

from orca_math.teacher.config import TeacherConfig

__all__ = ["ChatResult", "TeacherClient", "TeacherError", "TeacherUsage", "merge_usage", "teacher_error"]

Message = dict[str, Any]

_ECHOED_KEY = re.compile(r"(api key provided:\s*)\S+", re.I)

# Status codes that mean "this request can never succeed" (bad input, e.g. a prompt over the
# context length): retrying is useless, and the caller may quarantine just that request's row.
REJECTED_STATUS_CODES = frozenset({400, 413, 422})


class TeacherError(RuntimeError):
    """A teacher call that failed after the configured retries.

    ``kind``: rate_limited | server_error | timeout | connection | client_error | bad_reply.
    ``status`` is the last HTTP status (None for timeouts and connection errors); ``attempts``
    is how many requests were sent. The message names the endpoint and model, never the key.
    """

    def __init__(self, kind: str, message: str, *, base_url: str, model: str,
                 status: int | None = None, attempts: int = 1):
        self.kind, self.status, self.attempts = kind, status, attempts
        self.base_url, self.model, self.message = base_url, model, message
        where = f"teacher {model!r} at {base_url}"
        code = f" HTTP {status}" if status is not None else ""
        super().__init__(f"{where}: {kind}{code} after {attempts} attempt(s): {message}")

    @property
    def rejected(self) -> bool:
        """The endpoint refused this particular request (HTTP 400/413/422); it is not down."""
        return self.kind == "client_error" and self.status in REJECTED_STATUS_CODES

    def __reduce__(self):
        # Ray pickles a worker's error to hand it to the driver: keep it a TeacherError on the way.
        return (_rebuild_teacher_error, (self.kind, self.message, self.base_url, self.model, self.status,
                                         self.attempts))


def _rebuild_teacher_error(kind: str, message: str, base_url: str, model: str, status: int | None,
                           attempts: int) -> TeacherError:
    return TeacherError(kind, message, base_url=base_url, model=model, status=status, attempts=attempts)


@dataclass
class TeacherUsage:
    """Teacher requests and tokens spent (per stage, or per flow), summed across workers with merge_usage."""

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
        """The counts as a plain dict (manifests, part metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> "TeacherUsage":
        """Inverse of :meth:`as_dict`."""
        return cls(**{k: int(v) for k, v in data.items()})


def merge_usage(into: dict[str, TeacherUsage], *more: Mapping[str, TeacherUsage]) -> dict[str, TeacherUsage]:
    """Add the per-stage (or per-flow) usage of ``more`` into ``into`` (in place) and return it."""
    for usage in more:
        for key, u in usage.items():
            into.setdefault(key, TeacherUsage()).add(u)
    return into


@dataclass(frozen=True)
class ChatResult:
    """One chat completion: the reply text and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None
    model: str | None = None


@dataclass
class _LoopState:
    api: openai.AsyncOpenAI
    in_flight: asyncio.Semaphore


def _error_kind(e: openai.OpenAIError) -> tuple[str, int | None]:
    if isinstance(e, openai.APITimeoutError):
        return "timeout", None
    if isinstance(e, openai.APIConnectionError):
        return "connection", None
    if isinstance(e, openai.APIStatusError):
        if e.status_code == 429:
            return "rate_limited", 429
        if e.status_code >= 500:
            return "server_error", e.status_code
        return "client_error", e.status_code
    return "bad_reply", None


def _scrub(text: str, cfg: TeacherConfig) -> str:
    key = cfg.api_key()
    if key and key != "EMPTY":
        text = text.replace(key, "***")
    # OpenAI's 401 body echoes a masked key ("sk-ab***wxyz"): drop even that.
    return _ECHOED_KEY.sub(r"\1***", text)


def teacher_error(e: openai.OpenAIError, cfg: TeacherConfig) -> TeacherError:
    """The TeacherError for an ``openai`` client failure on ``cfg``'s endpoint, once its retries are
    spent: what TeacherClient raises, and what callers of other clients on the same endpoint (AutoGen's)
    raise in its place. Raise it ``from None``: the openai exception holds the request, headers included."""
    kind, status = _error_kind(e)
    attempts = 1 if kind == "client_error" and status not in (408, 409) else cfg.max_retries + 1
    return TeacherError(kind, _scrub(f"{type(e).__name__}: {e}", cfg), base_url=cfg.base_url, model=cfg.model,
                        status=status, attempts=attempts)


class TeacherClient:
    """Async chat client for one teacher endpoint; see the module docstring for the contract."""

    def __init__(self, cfg: TeacherConfig, stage: str = "default"):
        self.cfg = cfg
        self.stage = stage
        self._lock = threading.Lock()
        self._usage: dict[str, TeacherUsage] = {}
        self._per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = (
            weakref.WeakKeyDictionary()
        )

    def __reduce__(self):
        # Ray ships UDF constructor args by pickle: a client travels as its config and stage and
        # arrives fresh (own pools, usage from zero); sum workers' usage() with merge_usage.
        return (TeacherClient, (self.cfg, self.stage))

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._per_loop.get(loop)
            if state is None:
                api = openai.AsyncOpenAI(
                    base_url=self.cfg.base_url,
                    api_key=self.cfg.api_key(),
                    max_retries=self.cfg.max_retries,
                    timeout=self.cfg.timeout_s,
                )
                state = _LoopState(api, asyncio.Semaphore(self.cfg.max_in_flight))
                self._per_loop[loop] = state
            return state

    def _fail(self, kind: str, message: str, status: int | None = None, attempts: int = 1) -> TeacherError:
        return TeacherError(kind, _scrub(message, self.cfg), base_url=self.cfg.base_url, model=self.cfg.model,
                            status=status, attempts=attempts)

    async def chat(self, messages: Sequence[Message], *, stage: str | None = None, **create_kwargs: Any) -> ChatResult:
        """One chat completion. ``create_kwargs`` go to ``chat.completions.create`` and override
        the config's temperature/max_tokens. Raises TeacherError once retries are spent."""
        state = self._state()
        kwargs: dict[str, Any] = {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        kwargs.update(create_kwargs)
        async with state.in_flight:
            try:
                resp = await state.api.chat.completions.create(
                    model=self.cfg.model, messages=list(messages), **kwargs
                )
            except openai.OpenAIError as e:
                # `from None`: the chained openai exception holds the request, headers included.
                raise teacher_error(e, self.cfg) from None
        if not resp.choices:
            raise self._fail("bad_reply", "reply has no choices")
        choice = resp.choices[0]
        usage = resp.usage
        result = ChatResult(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
            model=resp.model,
        )
        self._count(stage or self.stage, result)
        return result

    async def chat_many(self, conversations: Iterable[Sequence[Message]], *, stage: str | None = None,
                        return_exceptions: bool = False, **create_kwargs: Any) -> list[ChatResult | TeacherError]:
        """Many chats at once (at most ``max_in_flight`` on the wire), results in input order.

        With ``return_exceptions`` a failed chat is its TeacherError in the list instead of
        failing the whole call, so a caller can quarantine just that row.
        """
        tasks = [self.chat(c, stage=stage, **create_kwargs) for c in conversations]
        return await asyncio.gather(*tasks, return_exceptions=return_exceptions)

    def _count(self, stage: str, result: ChatResult) -> None:
        with self._lock:
            self._usage.setdefault(stage, TeacherUsage()).add(
                TeacherUsage(1, result.prompt_tokens, result.completion_tokens))

    def usage(self) -> dict[str, TeacherUsage]:
        """Tokens used so far, per stage (a copy).

        Put it in the stage's manifest entry (``{s: u.as_dict() for s, u in client.usage().items()}``).
        Successful requests only; retries the endpoint refused cost no tokens.
        """
        with self._lock:
            return {stage: TeacherUsage().add(u) for stage, u in self._usage.items()}

    async def aclose(self) -> None:
        """Close the connection pool of the current event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._per_loop.pop(loop, None)
        if state is not None:
            await state.api.close()
