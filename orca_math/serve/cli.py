"""``orca-math serve teacher|judge``: long-running Ray Serve apps, stopped cleanly by Ctrl-C or SIGTERM.

Both print their base URL once they answer requests, then serve until interrupted, then shut
Serve and Ray down. Settings come from the ``serve:`` section of ``--config`` (plus ``judge:``
and ``teacher:`` for the judge), flags override them.
"""

from __future__ import annotations

import argparse
import signal
import threading

from orca_math.common.config import add_config_flags, config_from_args, load_stage_config
from orca_math.judge.config import JudgeConfig
from orca_math.serve.config import ServeConfig
from orca_math.teacher.config import TeacherConfig
from orca_math.teacher.serving import SHUTDOWN_S, delete_app


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the teacher or the judge as a Ray Serve service")
    services = p.add_subparsers(dest="service", required=True, metavar="SERVICE")

    t = services.add_parser("teacher", help="OpenAI-compatible teacher (vLLM via ray.serve.llm)")
    t.add_argument("--model", required=True, help="HF id or local model folder")
    _add_common(t)
    add_config_flags(t, "serve", ServeConfig, {"teacher.model_id": "--model-id", "teacher.accelerator": "--accelerator",
                                               "teacher.readiness_timeout_s": "--readiness-timeout"})
    t.set_defaults(func=run_serve_teacher_command)

    j = services.add_parser("judge", help="autoscaled judge: POST /v1/judge")
    _add_common(j)
    add_config_flags(j, "judge", JudgeConfig, ["method"])
    add_config_flags(j, "teacher", TeacherConfig, {"base_url": "--teacher-url", "model": "--teacher-model"})
    add_config_flags(j, "serve", ServeConfig, {"judge.readiness_timeout_s": "--readiness-timeout"})
    j.set_defaults(func=run_serve_judge_command)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML config (e.g. configs/tiny.yaml); default: paper settings")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (0.0.0.0 to listen on all interfaces)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port")


def _wait_for_signal_then_shutdown(app_name: str) -> None:
    """Block until SIGINT/SIGTERM, then stop: within ``SHUTDOWN_S`` seconds, whatever Serve is doing.

    On a Ray instance this process started, ``ray.shutdown()`` ends every replica with the instance:
    deleting the app first only waits for replicas to drain. On a shared cluster (RAY_ADDRESS) our
    app is deleted, waiting at most ``SHUTDOWN_S``, and Serve is shut down only if no other app runs.
    A second Ctrl-C or SIGTERM while stopping ends the process at once.
    """
    import ray

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("shutting down", flush=True)
        if not _started_here():
            delete_app(app_name, SHUTDOWN_S)
        ray.shutdown()


def _started_here() -> bool:
    """Whether this process started the Ray instance it is connected to (``ray.init`` without an address)."""
    import ray

    node = ray._private.worker._global_node  # no public API says who started the instance
    return bool(node is not None and getattr(node, "ray_init_cluster", False))


def run_serve_teacher_command(args: argparse.Namespace) -> int:
    """``orca-math serve teacher``: deploy the teacher, print its URL, serve until SIGINT/SIGTERM."""
    from orca_math.teacher.serve_teacher import TEACHER_APP, served_model_id, start_teacher

    cfg = load_stage_config(ServeConfig, config_from_args(args), "serve").teacher
    # A failed start leaves Ray as common/ending.py does for every command (the caller's Ray stays up).
    base_url = start_teacher(args.model, cfg, args.host, args.port)
    print(f"teacher {served_model_id(args.model, cfg)!r} ready: {base_url}", flush=True)
    _wait_for_signal_then_shutdown(TEACHER_APP)
    return 0


def run_serve_judge_command(args: argparse.Namespace) -> int:
    """``orca-math serve judge``: deploy the judge, print its URL, serve until SIGINT/SIGTERM."""
    from orca_math.judge.serve_judge import JUDGE_APP, start_judge

    config = config_from_args(args)
    serve_cfg = load_stage_config(ServeConfig, config, "serve").judge
    judge_cfg = load_stage_config(JudgeConfig, config, "judge")
    teacher_cfg = None
    if judge_cfg.method != "exact":
        teacher_cfg = load_stage_config(TeacherConfig, config, "teacher")
    base_url = start_judge(judge_cfg, serve_cfg, teacher_cfg, args.host, args.port)
    print(f"judge ({judge_cfg.method}) ready: {base_url} (POST {base_url}/judge)", flush=True)
    _wait_for_signal_then_shutdown(JUDGE_APP)
    return 0
