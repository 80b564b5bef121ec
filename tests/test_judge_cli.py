"""`orca-math serve judge` as a user runs it: prints its URL when ready, serves, exits cleanly on SIGTERM/SIGINT."""

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


def _start(port: int, extra_env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    # RAY_ADDRESS=local: a fresh Ray of its own, never a cluster someone started on this machine.
    env = {**os.environ, "RAY_ADDRESS": "local", **extra_env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orca_math.cli", "serve", "judge", "--config", "tiny", "--port", str(port),
         "--readiness-timeout", "120"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return proc, lines


def _wait_for(lines: list[str], text: str, proc: subprocess.Popen, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in list(lines):
            if text in line:
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"no {text!r} in output:\n" + "".join(lines[-40:]))


def test_serve_judge_prints_url_serves_and_stops_cleanly_on_sigterm():
    """SIGINT (Ctrl-C) goes through the same handler; one signal keeps the suite short."""
    sig = signal.SIGTERM
    port = free_port()
    proc, lines = _start(port, {})
    try:
        ready = _wait_for(lines, "judge (exact) ready:", proc, timeout_s=180)
        assert f"http://127.0.0.1:{port}/v1" in ready and "judge (exact)" in ready
        item = {"question": "q", "reference": "#### 72", "candidate": "so 72"}
        r = httpx.post(f"http://127.0.0.1:{port}/v1/judge", json={"items": [item]}, timeout=30)
        assert r.json()["verdicts"] == [{"correct": True, "method": "exact", "extracted": "72", "error": None}]

        sent = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=90) == 0
        assert time.monotonic() - sent < 30  # a stopping service does not wait on Serve draining
        assert any("shutting down" in line for line in lines)
        with pytest.raises(httpx.TransportError):  # nothing listens any more
            httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_judge_refuses_to_start_when_its_token_env_var_is_missing(tmp_path):
    cfg = tmp_path / "judge.yaml"
    cfg.write_text("serve:\n  judge:\n    auth_token_env: ORCA_TEST_UNSET_TOKEN\n")
    env = {k: v for k, v in os.environ.items() if k != "ORCA_TEST_UNSET_TOKEN"}
    out = subprocess.run([sys.executable, "-m", "orca_math.cli", "serve", "judge", "--config", str(cfg),
                          "--port", str(free_port())], cwd=REPO, env={**env, "RAY_ADDRESS": "local"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "serve.judge.auth_token_env: env var ORCA_TEST_UNSET_TOKEN is not set" in out.stderr
