"""A simulated multi-node Ray cluster on this machine, shaped like cluster.yaml, started with the real CLI.

Three ``ray start --block`` nodes on 127.0.0.1, each in its own session (stopped by signalling that
session: ``ray stop`` would stop every Ray on the machine, the test session's own included): a
``head`` with CPUs only, a ``gpu_sampler`` node advertising ``sampler`` and a ``gpu_trainer`` node
advertising ``trainer`` (cluster.yaml's custom resources; no GPUs here).
Each node has the node type label the launcher sets (``RAY_NODE_TYPE_NAME``) and its own node-local
scratch (``ORCA_MATH_SCRATCH``). ``hide`` gives one node a private mount namespace with an empty tmpfs
over a folder, so that node cannot see what the others write there (a failed NFS mount). Jobs go
through the real ``ray job submit`` CLI with a working dir.
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
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
NODE_TYPES = {"head": {}, "gpu_sampler": {"sampler": 2}, "gpu_trainer": {"trainer": 2}}
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


def stop_session(proc: subprocess.Popen, grace_s: float = 1.0) -> None:
    """SIGTERM every process of ``proc``'s session (ours alone), SIGKILL what is left after ``grace_s``
    (a node drains for up to 30 s on SIGTERM; nothing of a test cluster is kept)."""
    def members() -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "-s", str(proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    for sig, grace in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        for pid in members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while members() and time.monotonic() < deadline:
            time.sleep(0.5)
    proc.wait(timeout=10)


@dataclass
class SimCluster:
    root: Path
    hide: tuple[str, str] | None = None  # (node type, folder it must not see)
    procs: list = field(default_factory=list)

    def __post_init__(self) -> None:
        # Each node its own temp dir, as each machine of a cluster has its own disk: nodes sharing one
        # each unpacked a job's working_dir into the same folder, under the first job's running driver.
        # Short: Ray's socket paths must fit 107 chars.
        self.temp_dirs = {t: tempfile.mkdtemp(prefix=f"sim-{t[:4]}", dir="/tmp") for t in NODE_TYPES}
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        self.address = f"http://127.0.0.1:{self.ports['dashboard-port']}"
        # Ray's CLI and every job talk to this cluster only, with auth off (PLATFORM-NOTES); jobs run
        # `python` in the nodes' environment: the venv's first on PATH.
        self.env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_JOB_CONFIG_JSON_ENV_VAR")}
        self.env.update(RAY_AUTH_MODE="disabled", PATH=f"{VENV_BIN}{os.pathsep}{self.env.get('PATH', '')}")

    def scratch(self, node_type: str) -> Path:
        return self.root / "scratch" / node_type

    def start(self) -> "SimCluster":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for node_type, resources in NODE_TYPES.items():
            self.scratch(node_type).mkdir(parents=True, exist_ok=True)
            env = {**self.env, "RAY_NODE_TYPE_NAME": node_type, "ORCA_MATH_SCRATCH": str(self.scratch(node_type))}
            args = [str(VENV_BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    f"--resources={json.dumps(resources)}", "--disable-usage-stats",
                    f"--temp-dir={self.temp_dirs[node_type]}"]
            if node_type == "head":
                args += ["--head", "--dashboard-host=127.0.0.1",
                         *(f"--{flag}={port}" for flag, port in self.ports.items())]
            else:
                args += [f"--address=127.0.0.1:{self.ports['port']}"]
            if self.hide and self.hide[0] == node_type:
                os.makedirs(self.hide[1], exist_ok=True)
                script = f"mount -t tmpfs orca-math-hidden '{self.hide[1]}' && exec " + " ".join(f"'{a}'" for a in args)
                args = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
            log = open(self.root / f"{node_type}.log", "w")
            self.procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
            # One at a time: nodes starting together on two cores time out registering with the GCS.
            if node_type == "head":
                self._wait_for_dashboard()
            self._wait_for_nodes(len(self.procs))

    def _wait_for_dashboard(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs[0].poll() is not None:
                raise RuntimeError("ray start exited:\n" + (self.root / "head.log").read_text()[-4000:])
            try:
                if urllib.request.urlopen(f"{self.address}/api/version", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError("the head's dashboard never came up")

    def _wait_for_nodes(self, count: int, timeout_s: float = 120) -> None:
        from ray.util.state import list_nodes

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            alive = [n for n in list_nodes(address=self.address) if n.state == "ALIVE"]
            if len(alive) == count:
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(1)
        logs = {t: (self.root / f"{t}.log").read_text()[-2000:] for t in list(NODE_TYPES)[:count]}
        raise TimeoutError(f"only {len(alive)} of {count} nodes joined: {logs}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_session(proc)
        for temp_dir in self.temp_dirs.values():
            shutil.rmtree(temp_dir, ignore_errors=True)

    def job(self, *args: str, submission_id: str, wait: bool = True, timeout: float = 600):
        """``ray job submit --working-dir REPO -- python ray_jobs/...``: the repo as the job's code."""
        cmd = [str(VENV_BIN / "ray"), "job", "submit", "--address", self.address, "--working-dir", ".",
               "--submission-id", submission_id, "--", "python", *args]
        if not wait:
            return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
        return subprocess.run(cmd, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)

    def ray(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "ray"), *args], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=120)
