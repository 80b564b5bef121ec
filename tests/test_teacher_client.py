"""TeacherClient against a real HTTP endpoint on 127.0.0.1 that answers, fails, hangs and drops."""

from __future__ import annotations

import asyncio
import time

import pytest

from orca_math.generate.clients import autogen_model_client
from orca_math.teacher import TeacherClient, TeacherConfig, TeacherError, TeacherUsage, merge_usage
from orca_math.teacher.scripted import Fault, ScriptedEndpoint

SECRET = "sk-test-do-not-leak-0123456789"
USER = [{"role": "user", "content": "What is two plus two?"}]


@pytest.fixture
def endpoint():
    with ScriptedEndpoint(reply=lambda body: "The answer is 4") as ep:
        yield ep


@pytest.fixture
def cfg(endpoint, monkeypatch) -> TeacherConfig:
    monkeypatch.setenv("ORCA_TEST_TEACHER_KEY", SECRET)
    return TeacherConfig(base_url=endpoint.base_url, model="scripted", api_key_env="ORCA_TEST_TEACHER_KEY",
                         max_retries=2, timeout_s=1.0, max_in_flight=4)


def test_chat_returns_text_and_counts_tokens_per_stage(endpoint, cfg):
    client = TeacherClient(cfg, stage="agent_instruct")

    async def go():
        first = await client.chat(USER)
        second = await client.chat(USER, stage="solve", max_tokens=7)
        return first, second

    first, second = asyncio.run(go())
    assert first.text == "The answer is 4"
    assert (first.prompt_tokens, first.completion_tokens) == (5, 4)  # the endpoint counts words
    assert client.usage() == {
        "agent_instruct": TeacherUsage(requests=1, prompt_tokens=5, completion_tokens=4),
        "solve": TeacherUsage(requests=1, prompt_tokens=5, completion_tokens=4),
    }
    assert endpoint.requests[1]["max_tokens"] == 7 and endpoint.requests[0]["max_tokens"] == cfg.max_tokens
    assert endpoint.auth_headers[0] == f"Bearer {SECRET}"


def test_requests_in_flight_never_exceed_max_in_flight(cfg):
    with ScriptedEndpoint(reply=lambda body: "ok", delay_s=0.2) as slow:
        client = TeacherClient(cfg.model_copy(update={"base_url": slow.base_url, "max_in_flight": 3}))
        results = asyncio.run(client.chat_many([USER] * 12))
    assert len(results) == 12 and all(r.text == "ok" for r in results)
    assert slow.max_concurrent == 3


def test_client_works_across_event_loops(endpoint, cfg):
    """Ray Data may call an async UDF from different loops; the pool is per loop."""
    client = TeacherClient(cfg)
    for _ in range(3):
        assert asyncio.run(client.chat(USER)).text == "The answer is 4"
    assert client.usage()["default"].requests == 3


@pytest.mark.parametrize("fault,kind,status", [
    (Fault.status(500), "server_error", 500),
    (Fault.status(503), "server_error", 503),
    (Fault.status(429, retry_after=0.5), "rate_limited", 429),
    (Fault.close(), "connection", None),
])
def test_persistent_faults_are_retried_as_configured_then_raise_a_clear_error(endpoint, cfg, fault, kind, status):
    endpoint.push(*[fault] * 10)
    client = TeacherClient(cfg)
    with pytest.raises(TeacherError) as err:
        asyncio.run(client.chat(USER))
    assert endpoint.hits == cfg.max_retries + 1
    assert err.value.kind == kind and err.value.status == status and err.value.attempts == 3
    assert endpoint.base_url in str(err.value) and "scripted" in str(err.value)
    assert client.usage() == {}  # nothing was answered, nothing is counted


def test_429_retry_after_is_honoured(endpoint, cfg):
    endpoint.push(Fault.status(429, retry_after=1.5))
    client = TeacherClient(cfg)
    started = time.monotonic()
    result = asyncio.run(client.chat(USER))
    waited = time.monotonic() - started
    assert result.text == "The answer is 4" and endpoint.hits == 2
    assert waited >= 1.4  # the server's 1.5 s, not the client's own ~0.5 s backoff


def test_a_hang_past_the_timeout_is_retried_then_a_timeout_error(endpoint, cfg):
    endpoint.push(*[Fault.hang(30)] * 3)
    client = TeacherClient(cfg.model_copy(update={"max_retries": 1, "timeout_s": 0.5}))
    started = time.monotonic()
    with pytest.raises(TeacherError) as err:
        asyncio.run(client.chat(USER))
    assert err.value.kind == "timeout" and err.value.attempts == 2
    assert endpoint.hits == 2
    assert time.monotonic() - started < 10  # bounded: 2 x 0.5 s plus backoff, never the 30 s hang


def test_transient_faults_recover_within_the_retry_budget(endpoint, cfg):
    endpoint.push(Fault.status(500), Fault.close())
    result = asyncio.run(TeacherClient(cfg).chat(USER))
    assert result.text == "The answer is 4" and endpoint.hits == 3


def test_client_errors_are_not_retried(endpoint, cfg):
    endpoint.push(Fault.status(400))
    with pytest.raises(TeacherError) as err:
        asyncio.run(TeacherClient(cfg).chat(USER))
    assert err.value.kind == "client_error" and err.value.status == 400 and endpoint.hits == 1


def test_the_api_key_never_appears_in_errors(endpoint, cfg):
    for fault in (Fault.status(401), Fault.status(500), Fault.close()):
        endpoint.push(*[fault] * 3)
        with pytest.raises(TeacherError) as err:
            asyncio.run(TeacherClient(cfg).chat(USER))
        e = err.value
        assert SECRET not in str(e) and SECRET not in repr(e)
        assert e.__cause__ is None and e.__suppress_context__  # the openai error (with headers) is not chained


def test_a_401_that_echoes_a_masked_key_is_redacted(endpoint, cfg):
    masked = "sk-tes************************6789"
    endpoint.push(Fault.status(401, message=f"Incorrect API key provided: {masked}. Find your key at ..."))
    with pytest.raises(TeacherError) as err:
        asyncio.run(TeacherClient(cfg).chat(USER))
    assert masked not in str(err.value) and "Incorrect API key provided: ***" in str(err.value)


def test_chat_many_can_return_errors_in_place_so_one_failure_does_not_sink_a_batch(endpoint, cfg):
    endpoint.push(Fault.status(400))
    client = TeacherClient(cfg.model_copy(update={"max_in_flight": 1}))
    results = asyncio.run(client.chat_many([USER] * 3, return_exceptions=True))
    assert isinstance(results[0], TeacherError)
    assert [r.text for r in results[1:]] == ["The answer is 4"] * 2
    assert client.usage()["default"].requests == 2


def test_a_client_pickles_as_a_fresh_client_for_ray_workers(endpoint, cfg):
    import pickle

    client = TeacherClient(cfg, stage="solve")
    asyncio.run(client.chat(USER))
    copy = pickle.loads(pickle.dumps(client))
    assert (copy.cfg, copy.stage, copy.usage()) == (cfg, "solve", {})
    assert asyncio.run(copy.chat(USER)).text == "The answer is 4"


def test_merge_usage_sums_workers():
    a = {"judge": TeacherUsage(requests=1, prompt_tokens=10, completion_tokens=2)}
    b = {"judge": TeacherUsage(requests=2, prompt_tokens=5, completion_tokens=1),
         "solve": TeacherUsage(requests=1, prompt_tokens=1, completion_tokens=1)}
    assert merge_usage({}, a, b) == {"judge": TeacherUsage(requests=3, prompt_tokens=15, completion_tokens=3),
                                     "solve": TeacherUsage(requests=1, prompt_tokens=1, completion_tokens=1)}


def test_autogen_client_talks_to_the_same_endpoint(endpoint, cfg):
    from autogen_core.models import UserMessage

    client = autogen_model_client(cfg)
    assert client.model_info["family"] == "unknown" and not client.model_info["function_calling"]
    result = asyncio.run(client.create([UserMessage(content="What is two plus two?", source="user")]))
    assert result.content == "The answer is 4"
    assert result.usage.prompt_tokens == 5 and result.usage.completion_tokens == 4
    assert endpoint.auth_headers[-1] == f"Bearer {SECRET}"


def test_autogen_client_keeps_known_openai_model_info(cfg):
    client = autogen_model_client(cfg.model_copy(update={"model": "gpt-4o"}))
    assert client.model_info["function_calling"] is True
