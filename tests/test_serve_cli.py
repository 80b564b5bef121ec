"""`orca-math serve teacher|judge` with no --config, as a new user runs them: the defaults serve on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from orca_math.teacher.scripted import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _serve(*args: str) -> tuple[subprocess.Popen, list[str]]:
    # RAY_ADDRESS=local: a fresh Ray of its own, never a cluster someone started on this machine.
    proc = subprocess.Popen([sys.executable, "-m", "orca_math.cli", "serve", *args], cwd=REPO,
                            env={**os.environ, "RAY_ADDRESS": "local"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return proc, lines


def _ready_line(proc: subprocess.Popen, lines: list[str], text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        found = next((line for line in list(lines) if text in line), None)
        if found:
            return found
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"no {text!r} in output:\n" + "".join(lines[-40:]))


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0


def test_serve_teacher_with_only_a_model_answers_the_openai_client_on_cpu(tiny_model):
    """The issue's command: no --config, no --accelerator, no max_model_len; the tiny model allows 2,048."""
    import openai

    port = free_port()
    proc, lines = _serve("teacher", "--model", str(tiny_model), "--port", str(port))
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        _ready_line(proc, lines, f"teacher {tiny_model.name!r} ready: {base_url}", timeout_s=400)
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
        assert [m.id for m in client.models.list().data] == [tiny_model.name]
        reply = client.chat.completions.create(model=tiny_model.name, max_tokens=6, temperature=0.0,
                                               messages=[{"role": "user", "content": "What is 2 + 3?"}])
        assert reply.usage.completion_tokens == 6 and reply.choices[0].finish_reason == "length"
        assert reply.usage.prompt_tokens > 5 and reply.choices[0].message.content
        _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_judge_with_no_config_judges_over_http():
    port = free_port()
    proc, lines = _serve("judge", "--port", str(port))
    try:
        ready = _ready_line(proc, lines, "judge (exact) ready:", timeout_s=240)
        assert f"http://127.0.0.1:{port}/v1" in ready
        items = [{"question": "q", "reference": "#### 72", "candidate": "so 72"},
                 {"question": "q", "reference": "#### 72", "candidate": "so 27"}]
        r = httpx.post(f"http://127.0.0.1:{port}/v1/judge", json={"items": items}, timeout=60)
        assert [(v["correct"], v["extracted"]) for v in r.json()["verdicts"]] == [(True, "72"), (False, "27")]
        _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
