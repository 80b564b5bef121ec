"""`ray job submit` against a real head: the recipe runs as a Ray job, and its progress reaches Ray metrics.

The head is our own (`ray start --head --block` in a new session, free ports, its own temp dir)
and is stopped by signalling that session: `ray stop` would stop every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from orca_math.common.config import load_yaml
from orca_math.common.manifest import RunManifest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PORT_FLAGS = ["port", "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port",
              "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port",
              "node-manager-port", "object-manager-port"]


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free right now (held open together so none repeats)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def scrape(port: int, needle: str) -> list[str]:
    """Prometheus lines on a metrics endpoint that contain ``needle``."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return [line for line in body.splitlines() if needle in line and not line.startswith("#")]


def wait_for(what: str, check, timeout_s: float, interval_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def stop_session(proc: subprocess.Popen) -> None:
    """SIGTERM every process of the head's session (ours alone), SIGKILL what is left after 5 s (the
    head drains for up to 30 s on SIGTERM; nothing of it is kept)."""
    def members() -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "-s", str(proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        for pid in members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while members() and time.monotonic() < deadline:
            time.sleep(0.5)
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ray_head():
    """A head started like on a cluster (`ray start --head`), dashboard on 127.0.0.1, auth off."""
    temp_dir = tempfile.mkdtemp(prefix="rayjob", dir="/tmp")  # short: Ray's socket paths must fit 107 chars
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Jobs run `python ...` in the head's environment: the venv's python must come first on PATH.
    env.update(RAY_AUTH_MODE="disabled", PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--dashboard-host=127.0.0.1", "--num-cpus=2",
           f"--temp-dir={temp_dir}", "--disable-usage-stats", *(f"--{flag}={port}" for flag, port in ports.items())]
    log = open(Path(temp_dir) / "ray_start.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    dashboard = f"http://127.0.0.1:{ports['dashboard-port']}"
    def dashboard_up() -> bool:
        if proc.poll() is not None:
            pytest.fail("ray start exited:\n" + (Path(temp_dir) / "ray_start.log").read_text()[-4000:])
        return urllib.request.urlopen(f"{dashboard}/api/version", timeout=2).status == 200

    try:
        wait_for("the dashboard", dashboard_up, timeout_s=90)
        yield {"dashboard": dashboard, "metrics_port": ports["metrics-export-port"], "env": env}
    finally:
        stop_session(proc)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def job_config(path: Path, gsm8k_dir: Path) -> Path:
    """configs/tiny.yaml cut to a short job: tiny student -> seeds -> SFT (3 steps) -> eval-M1 on 4 problems.

    Data paths are absolute: the job runs from an uploaded copy of the repo, not from /work/main.
    """
    cfg = load_yaml(REPO / "configs/tiny.yaml")  # extends resolved: every section in full
    cfg["run"].update(seeds=str(gsm8k_dir / "train.jsonl"), seed_limit=16, rounds=0)
    cfg["eval"].update(data=str(gsm8k_dir / "test.jsonl"), limit=4)
    cfg["eval"]["decoding"]["max_tokens"] = 48
    cfg["sft"].update(max_steps=3, save_steps=3)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_as_a_ray_job_writes_results_and_exports_metrics(ray_head, gsm8k_dir, tmp_path):
    config, out = job_config(tmp_path / "job.yaml", gsm8k_dir), tmp_path / "run"
    submit = [str(VENV_BIN / "ray"), "job", "submit", "--address", ray_head["dashboard"], "--working-dir", ".",
              "--submission-id", f"orca-math-test-{os.getpid()}", "--",
              "python", "ray_jobs/run.py", "--config", str(config), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(submit, cwd=REPO, env=ray_head["env"], capture_output=True, text=True, timeout=540)
    print(f"ray job: {time.perf_counter() - start:.0f}s")
    logs = done.stdout + done.stderr
    assert done.returncode == 0 and "succeeded" in logs, logs[-6000:]

    manifest = RunManifest(out / "manifest.json")
    stages = ["student", "seeds", "sft", "eval-M1"]
    assert {s: manifest.get(s)["status"] for s in stages} == dict.fromkeys(stages, "done")
    results = json.loads((out / "results.json").read_text())
    assert [(r["stage"], r["model"], r["n"]) for r in results] == [("eval-M1", "M1", 4)]
    assert 0 <= results[0]["accuracy"] <= 1 and results[0]["accuracy"] == manifest.get("eval-M1")["accuracy"]
    assert (out / "models/M1/config.json").exists() and (out / "results.md").exists()
    # The driver ran from the uploaded working dir, through our entry point.
    assert "[eval-M1]" in logs and "results:" in logs

    # The job driver's stage metrics reached the head's Prometheus endpoint (what Grafana charts).
    seeds_rows = wait_for("orca_math metrics on the head", lambda: scrape(
        ray_head["metrics_port"], 'ray_orca_math_rows_processed_total'), timeout_s=30)
    assert any('stage="seeds"' in line and line.endswith(" 16.0") for line in seeds_rows), seeds_rows


def test_stage_metrics_export_from_a_driver(ray_local):
    """`ray.util.metrics` recorded in a driver process (not a task or actor) reach the node's exporter."""
    from orca_math.common import metrics

    stage = f"eval-driver-{os.getpid()}"
    metrics.stage_started(stage)
    metrics.stage_finished(stage, {"rows_out": 7, "rows_quarantined": 1, "accuracy": 0.25,
                                   "inputs": {"model": "M1"}, "teacher_tokens": {"prompt": 10}})
    port = ray_local._private.worker.global_worker.node.metrics_export_port
    lines = wait_for("the driver's metrics", lambda: [
        line for line in scrape(port, f'stage="{stage}"') if "orca_math_accuracy" in line], timeout_s=40)
    assert lines[0].endswith(" 0.25") and 'model="M1"' in lines[0]
    exported = scrape(port, f'stage="{stage}"')
    assert any("orca_math_rows_processed_total" in line and line.endswith(" 7.0") for line in exported)
    assert any("orca_math_rows_quarantined_total" in line and line.endswith(" 1.0") for line in exported)
    assert any("orca_math_teacher_tokens_total" in line and 'kind="prompt"' in line for line in exported)
