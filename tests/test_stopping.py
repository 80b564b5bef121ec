"""How a command ends: Ctrl-C and SIGTERM stop it within seconds and leave its folder resumable;
a failure is one last line on stderr naming what failed, where, and how to resume."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orca_math.common.config import load_yaml
from orca_math.common.manifest import RunManifest

REPO = Path(__file__).resolve().parents[1]
STOP_S = 30  # what a user waits after Ctrl-C at most
ORCA_MATH = [sys.executable, "-m", "orca_math.cli"]


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def test_a_missing_config_fails_in_one_line_naming_the_file(tmp_path):
    out = subprocess.run(ORCA_MATH + ["run", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    line = last_line(out.stderr)
    assert line.startswith("orca-math run failed: ConfigError: ") and "nope.yaml" in line and "fix the config" in line
    assert "Traceback" not in out.stderr
    log = tmp_path / "r/logs/run.log"
    assert line.endswith("fix the config, then rerun") and str(log) in line
    assert "Traceback" in log.read_text()


class _DropsAnInterrupt:
    """An object whose finalizer is running when Ctrl-C arrives, as a Ray Data iterator's ``__del__``
    (it joins threads for up to 2 s) can be: Python prints the ``KeyboardInterrupt`` and drops it."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)


def test_ctrl_c_that_a_finalizer_drops_still_stops_the_command(tmp_path, monkeypatch, capfd, ray_local):
    """The interrupt is sent again until the command has taken it. Ray, up before the command, is
    its caller's and stays up."""
    import argparse

    from orca_math.common import ending as cli

    monkeypatch.setattr(cli._Stop, "REDELIVER_S", 0.5)
    dropped = []  # what Python prints as "Exception ignored in ... __del__"
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_type))

    def command(args):
        _DropsAnInterrupt()  # finalized at once, on the main thread
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # a stage that would go on for minutes
            time.sleep(0.05)
        return 0

    args = argparse.Namespace(command="run", func=command, verbose=False, out=str(tmp_path / "run"))
    # default_int_handler, or SIG_IGN where a shell started the tests in the background
    before = signal.getsignal(signal.SIGINT)
    started = time.monotonic()
    with cli.signals_stop_the_command():
        rc = cli.run_to_one_last_line(args)
    stop_s = time.monotonic() - started
    err = capfd.readouterr().err
    assert dropped == [KeyboardInterrupt]  # the first delivery was lost
    assert rc == 130 and stop_s < 5, (rc, stop_s)
    line = last_line(err)
    assert line.startswith("orca-math run: stopped by SIGINT after ") and line.endswith("rerun the same command to resume")
    assert signal.getsignal(signal.SIGINT) is before  # the command's handlers are gone
    assert ray_local.is_initialized()


def _as_ray_data_raises_it(error: Exception, across_processes: bool):
    """What the driver gets when a Ray Data UDF raises ``error``: RayTaskError(UserCodeException),
    whose UserCodeException lost its ``__cause__`` when the worker pickled it."""
    import traceback

    from ray.exceptions import RayTaskError, UserCodeException

    try:
        try:
            raise error
        except Exception as e:
            raise UserCodeException("UDF failed to process a data block.") from e
    except UserCodeException as e:
        text = "".join(traceback.format_exception(e))
        wrapped = pickle.loads(pickle.dumps(e)) if across_processes else e
        return RayTaskError("MapWorker.submit", text, wrapped).as_instanceof_cause()


@pytest.mark.parametrize("across_processes", [False, True])
def test_a_teacher_error_inside_ray_wrappers_is_what_the_line_names(tmp_path, across_processes):
    import argparse

    from orca_math.common.ending import failure_line, root_cause
    from orca_math.teacher.client import TeacherError

    teacher = TeacherError("connection", "APIConnectionError: Connection error.", base_url="http://127.0.0.1:9/v1",
                           model="tiny", attempts=3)
    wrapped = _as_ray_data_raises_it(teacher, across_processes)
    if not across_processes:
        assert root_cause(wrapped) is teacher
    again = pickle.loads(pickle.dumps(teacher))  # how Ray ships it from a task or actor
    assert type(again) is TeacherError and str(again) == str(teacher) and again.attempts == 3
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": {"generate": {"status": "failed"}}}))
    args = argparse.Namespace(command="generate", out=str(tmp_path))
    line = failure_line(args, wrapped, tmp_path / "logs/generate.log")
    assert line == ("orca-math generate failed: TeacherError: teacher 'tiny' at http://127.0.0.1:9/v1: connection "
                    "after 3 attempt(s): APIConnectionError: Connection error. "
                    f"(traceback: {tmp_path}/logs/generate.log); check the teacher endpoint, then rerun the same "
                    "command to resume")


def test_the_line_names_the_run_stage_that_failed(tmp_path):
    import argparse

    from orca_math.common.ending import failure_line
    from orca_math.common.records import RecordError

    (tmp_path / "manifest.json").write_text(json.dumps({"stages": {
        "sft": {"status": "done", "started_at": 1}, "practice-1": {"status": "failed", "started_at": 2}}}))
    args = argparse.Namespace(command="run", out=str(tmp_path))
    line = failure_line(args, RecordError("seeds.jsonl", 3, "answer", "no #### line"), None)
    assert line == ("orca-math run stage practice-1 failed: RecordError: seeds.jsonl, row 3, field 'answer': "
                    "no #### line; fix that record, then rerun the same command to resume")


@pytest.mark.slow
def test_generate_with_the_teacher_down_ends_in_one_line_naming_the_endpoint(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"question": f"Tom has {n} apples and buys 4 more. How many?",
                                         "answer": f"{n}+4={n + 4}\n#### {n + 4}"}) + "\n" for n in range(2)))
    url = f"http://127.0.0.1:{closed_port()}/v1"
    cfg = tmp_path / "gen.yaml"
    tiny = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    tiny["teacher"].update(max_retries=1, timeout_s=5)
    cfg.write_text(yaml.safe_dump(tiny))
    out = subprocess.run(ORCA_MATH + ["generate", "--config", str(cfg), "--seeds", str(seeds), "--teacher-url", url,
                                      "--out", str(tmp_path / "gen"), "--no-progress"],
                         cwd=REPO, env={**os.environ, "RAY_ADDRESS": "local"}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1
    line = last_line(out.stderr)
    assert line.startswith(f"orca-math generate failed: TeacherError: teacher 'tiny' at {url}: connection after "
                           "2 attempt(s)"), out.stderr[-3000:]
    assert line.endswith("check the teacher endpoint, then rerun the same command to resume")
    for noise in ("Traceback", "RayTaskError", "UserCodeException"):
        assert noise not in out.stderr, noise
    assert "APIConnectionError" in (tmp_path / "gen/logs/generate.log").read_text()
    assert RunManifest(tmp_path / "gen/manifest.json").get("generate")["status"] == "failed"


def small_run_config(path: Path) -> Path:
    """configs/tiny.yaml cut to the least that still trains, then samples. SFT trains on a Ray Train
    worker group (whose SIGINT handler these tests are about), not in local mode as tiny's does."""
    cfg = load_yaml(REPO / "configs/tiny.yaml")  # extends resolved: every section in full
    cfg["sft"]["scaling"]["local_mode"] = False
    cfg["run"].update(seed_limit=8, rounds=1, sft_control=False)
    cfg["eval"]["limit"] = 4
    cfg["eval"]["decoding"]["max_tokens"] = 32
    cfg["practice"]["decoding"]["max_tokens"] = 48
    cfg["sft"].update(max_steps=2, save_steps=2)
    cfg["kto"].update(max_steps=2, save_steps=2)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _wait_for_status(run_dir: Path, stage: str, status: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = run_dir / "manifest.json"
        try:
            if m.exists() and (RunManifest(m).get(stage) or {}).get("status") == status:
                return
        except ValueError:  # caught mid-write
            pass
        assert proc.poll() is None, f"run ended before {stage} was {status}:\n{proc.stderr.read()[-3000:]}"
        time.sleep(0.5)
    pytest.fail(f"{stage} never {status}")


@pytest.mark.slow
def test_ctrl_c_while_sampling_after_training_stops_the_run_and_leaves_it_resumable(tmp_path, gsm8k_dir):
    """Ray Train installs its own SIGINT handler during SFT; Ctrl-C in the practice stage after it
    must still stop the run. The signal goes to the whole process group, as a terminal sends it.
    A rerun keeps what finished and resumes the rest (what a resume then does, row by row:
    test_pipeline_run's killed run, test_streaming_resume)."""
    from orca_math.common.runner import Runner
    from orca_math.run.config import StageConfigs
    from orca_math.run.recipe import recipe

    cfg, run_dir = small_run_config(tmp_path / "run.yaml"), tmp_path / "run"
    # The tiny model samples the 8 problems in well under a second on eval-M1's engine host: a canned
    # engine that takes a minute per batch makes sure the signal lands while practice-1 samples.
    slow_practice = load_yaml(cfg)
    slow_practice["practice"]["engine"].update(kind="canned", canned_delay_s=60)
    cfg.write_text(yaml.safe_dump(slow_practice))
    env = {**os.environ, "RAY_ADDRESS": "local"}
    cmd = ORCA_MATH + ["run", "--config", str(cfg), "--out", str(run_dir)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_status(run_dir, "practice-1", "running", proc, timeout_s=600)
        time.sleep(3)  # into the sampling itself
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=120)
        stop_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = proc.stderr.read()
    print(f"stopped {stop_s:.1f}s after SIGINT")
    assert stop_s < STOP_S, stderr[-3000:]
    assert rc == 130
    line = last_line(stderr)
    assert line.startswith("orca-math run: stopped by SIGINT after ") and "in stage practice-1" in line, line
    assert line.endswith("rerun the same command to resume")
    manifest = RunManifest(run_dir / "manifest.json")
    assert manifest.get("practice-1")["error"].startswith("KeyboardInterrupt") and "judge-1" not in manifest.stages

    # What the same command would do now: skip what finished, resume the stopped stage, run the rest.
    runner, actions = Runner(run_dir.resolve()), {}
    for stage in recipe(StageConfigs.load(cfg), run_dir.resolve()):
        actions[stage.name] = runner.status(stage)
        runner.signatures[stage.name] = runner.signature(stage)
    assert actions == {"student": "skip", "seeds": "skip", "sft": "skip", "eval-M1": "skip", "practice-1": "resume",
                       "judge-1": "run", "prefs-1": "run", "kto-1": "run", "eval-M2": "run"}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_training_stops_the_run_within_seconds(tmp_path, gsm8k_dir, sig):
    """During SFT Ray Train's own SIGINT handler is in place (it aborts the workers, then exits 0);
    SIGTERM (a scheduler, `timeout`) must not wait for Ray's 30 s node drain. Both stop the run
    like Ctrl-C anywhere else."""
    cfg, run_dir = small_run_config(tmp_path / "run.yaml"), tmp_path / "run"
    proc = subprocess.Popen(ORCA_MATH + ["run", "--config", str(cfg), "--out", str(run_dir)], cwd=REPO,
                            env={**os.environ, "RAY_ADDRESS": "local"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_status(run_dir, "sft", "running", proc, timeout_s=300)
        time.sleep(5)  # Ray Train's workers are up
        sent = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does
        else:
            proc.send_signal(sig)
        rc = proc.wait(timeout=120)
        stop_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = proc.stderr.read()
    print(f"stopped {stop_s:.1f}s after {sig.name}")
    assert stop_s < STOP_S and rc == 130, stderr[-3000:]
    line = last_line(stderr)
    assert line.startswith(f"orca-math run: stopped by {sig.name} after ") and "in stage sft" in line, line
    assert RunManifest(run_dir / "manifest.json").get("sft")["status"] != "done"
