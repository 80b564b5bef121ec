"""Ray Serve plumbing shared by the teacher and the judge apps: HTTP options, deploy-and-wait.

Serve runs one HTTP proxy per Ray instance: the first app to start fixes host and port, and
later apps share them under their own route prefix. ``deploy_and_wait`` never blocks forever, and
its ServeReadinessError says why in one line, the app deleted again: the error a replica raised
(from Serve's deployment status; where that says only "See root cause above", the first error in the
replica's log, which vLLM's engine and worker processes write to), at the first one a restart cannot
fix (a config error is not worth Serve's three tries of a model load each); or at the timeout the
resources no node offered (a replica's placement group still pending), or what Serve reported.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

# Seconds a stopping app gives Serve to delete it before leaving anyway (a run being stopped, a
# service shutting down): Serve's own delete and shutdown may wait a minute for replicas to drain.
SHUTDOWN_S = 15


class ServeReadinessError(RuntimeError):
    """A Serve app that did not become ready (failed to deploy, or timed out)."""


def start_serve_http(host: str = "127.0.0.1", port: int = 8000) -> str:
    """Start Serve's HTTP proxy on ``host:port`` (if Serve is not up yet); return its root URL.

    If Serve is already running in this Ray instance, its existing host and port win (Serve
    cannot move them) and the returned URL says where it really is.
    """
    from ray import serve
    from ray.serve.context import _get_global_client

    serve.start(http_options={"host": host, "port": port})
    http = _get_global_client().http_config
    if (http.host, http.port) != (host, port):
        log.warning("Serve already listens on %s:%s; using it instead of %s:%s", http.host, http.port, host, port)
    return f"http://{http.host}:{http.port}"


# The last line of a traceback: "package.module.SomeError: message".
_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit|Interrupt)): (.*)$")
# Errors of the settings or the model, not of the moment: a replica restarted with the same config
# raises them again, so the first one ends the wait instead of Serve's three tries.
_CONFIG_ERRORS = frozenset({
    "ValueError", "TypeError", "KeyError", "AssertionError", "NotImplementedError", "ValidationError",
    "FileNotFoundError", "NotADirectoryError", "IsADirectoryError", "ImportError", "ModuleNotFoundError",
    "HFValidationError", "RepositoryNotFoundError", "GatedRepoError", "SafetensorError",
})
# ray.serve.llm wraps every error of vLLM's engine arguments (a context longer than the model's, a
# dtype the device lacks, too little memory for one sequence...) in a RuntimeError saying so.
_CONFIG_ERROR_MESSAGES = ("Failed to create vLLM engine config",)
# Serve's deployment message once a replica's constructor raised; the traceback follows "Error:".
_REPLICA_FAILED = re.compile(r"^(A replica failed to start with exception|The deployment failed to start)")
# What pydantic adds to a validation error: the input echoed back, and a link.
_PYDANTIC_NOISE = re.compile(r"\s*\[type=[^\]]*\]|\s*For further information visit \S+")


def root_error(traceback_text: str) -> tuple[str, str] | None:
    """(type name, message on one line) of the error a traceback's text ends in, the root of a chain
    ("The above exception was the direct cause...") rather than its last wrapper; None without one.

    The message keeps the lines after the error's own (a pydantic validation error says what is wrong
    there), less the input pydantic echoes back."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", traceback_text)
    root = re.split(r"\n\s*The above exception was the direct cause of the following exception:", text)[0]
    lines = root.splitlines()
    last = max((i for i, line in enumerate(lines) if _ERROR_LINE.match(line)), default=None)
    if last is None:
        return None
    error_type, first = _ERROR_LINE.match(lines[last]).groups()
    message = " ".join(part.strip() for part in [first, *lines[last + 1:]] if part.strip())
    return error_type, re.sub(r"\s+", " ", _PYDANTIC_NOISE.sub("", message)).strip()


def restart_cannot_fix(error_type: str, message: str) -> bool:
    """Whether a replica that raised this will raise it again when restarted with the same config."""
    return error_type in _CONFIG_ERRORS or message.startswith(_CONFIG_ERROR_MESSAGES)


# vLLM's engine and worker processes write their own error to the replica's log and the replica raises
# only "Engine core initialization failed. See root cause above."
_ERROR_ELSEWHERE = ("See root cause above", "See stack trace for root cause")
# Serve's traceback names the replica: "...initialize_and_get_metadata() (pid=8208, ip=10.0.0.5, actor_id=79..."
_REPLICA_PROCESS = re.compile(r"\(pid=(\d+), ip=([^,\s]+), actor_id=([0-9a-f]+)")
# What precedes a line a vLLM process logs: "(EngineCore pid=20256) ERROR 12-06 13:11:42 [core.py:1510] ".
_LOG_PREFIX = re.compile(r"^(?:\(\w+ pid=\d+\) )?(?:[A-Z]+ \d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+:\d+\] )?")


def first_logged_error(log_text: str) -> tuple[str, str] | None:
    """(type name, message) of the first error a log shows: in a log of several processes, the root
    cause is the one raised first (a worker's, before the engine's and the replica's wrappers)."""
    for line in re.sub(r"\x1b\[[0-9;]*m", "", log_text).splitlines():
        found = _ERROR_LINE.match(_LOG_PREFIX.sub("", line, count=1).strip())
        if found:
            return found.group(1), found.group(2).strip()
    return None


def _replica_log(pid: int, ip: str, actor_id: str) -> str | None:
    """A replica's stdout log (where vLLM writes): the file, where the replica ran on this node; else
    through Ray's state API (needs the dashboard); None where neither can be read."""
    import glob
    import os

    import ray
    from ray.util.state import get_log
    from ray.util.state.exception import RayStateApiException

    node = ray._private.worker._global_node  # no public API gives this node's log folder
    if node is not None and node.node_ip_address == ip:
        for path in glob.glob(os.path.join(node.get_logs_dir_path(), f"worker-*-{pid}.out")):
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
    try:
        return "".join(get_log(address=ray.get_runtime_context().gcs_address, actor_id=actor_id, suffix="out",
                               tail=5000, timeout=10))
    except (OSError, RayStateApiException, ValueError) as e:
        log.debug("the log of replica %s cannot be read (%s)", actor_id, e)
        return None


def _replica_error(app, logs_read: dict[str, tuple[str, str] | None]) -> tuple[str, str, str] | None:
    """(deployment, error type, message) of the first deployment whose replica raised while starting;
    where the replica names an error logged by another process, that one (``logs_read`` caches them)."""
    for name, dep in app.deployments.items():
        if _REPLICA_FAILED.match(dep.message or "") and "Error:" in dep.message:
            traceback_text = dep.message.split("Error:", 1)[1]
            found = root_error(traceback_text)
            replica = _REPLICA_PROCESS.search(traceback_text)
            if found and replica and any(hint in found[1] for hint in _ERROR_ELSEWHERE):
                if replica.group(3) not in logs_read:
                    text = _replica_log(int(replica.group(1)), replica.group(2), replica.group(3))
                    logs_read[replica.group(3)] = first_logged_error(text) if text else None
                found = logs_read[replica.group(3)] or found
            if found:
                return name, *found
    return None


def _pending_bundles(app_name: str) -> dict[str, list[dict[str, float]]]:
    """The placement groups of ``app_name``'s replicas that no node has offered yet, by deployment."""
    import ray

    pending: dict[str, list[dict[str, float]]] = {}
    for group in ray.util.placement_group_table().values():
        # Serve names a replica's group after the replica: "SERVE_REPLICA::app#deployment#id".
        parts = str(group.get("name", "")).split("::", 1)[-1].split("#")
        if len(parts) == 3 and parts[0] == app_name and group.get("state") == "PENDING":
            pending.setdefault(parts[1], list(group["bundles"].values()))
    return pending


def _deployment_report(app_name: str) -> str:
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return f"app {app_name!r} not found"
    parts = [f"app {app_name!r}: {app.status} {app.message}".strip()]
    for name, dep in app.deployments.items():
        message = " ".join((dep.message or "").split())
        parts.append(f"deployment {name}: {dep.status} {message[:300]}".strip())
    return "; ".join(parts)


def deploy_and_wait(app, name: str, route_prefix: str, timeout_s: float, ready_url: str | None = None,
                    ready_headers: dict[str, str] | None = None, timeout_setting: str = "readiness_timeout_s"):
    """Deploy ``app`` under ``name`` and wait (at most ``timeout_s``) until it serves; return its handle.

    An app already running under ``name`` is deleted first. Ready means Serve reports RUNNING and,
    when ``ready_url`` is given, a GET on it answers 200 (the proxy learns routes a moment after the
    app is up). Otherwise the app is deleted and ServeReadinessError says why in one line: the error
    a replica raised (at the first one a restart cannot fix, such as a config error; after Serve's
    retries for the others), or at the timeout (``timeout_setting`` names it) the resources that no
    node offered, or what Serve reported.
    """
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    if name in serve.status().applications:
        # Redeploying in place would report the old version RUNNING before the new one is up.
        log.warning("Serve app %r is already running; replacing it", name)
        serve.delete(name)
    started = time.monotonic()
    serve.run_many([serve.RunTarget(target=app, name=name, route_prefix=route_prefix)],
                   wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    logs_read: dict[str, tuple[str, str] | None] = {}
    while True:
        app_status = serve.status().applications.get(name)
        status = app_status.status if app_status else None
        if status == ApplicationStatus.RUNNING and (ready_url is None or _http_ok(ready_url, ready_headers)):
            return serve.get_app_handle(name)
        failed = _replica_error(app_status, logs_read) if app_status else None
        if failed and (status == ApplicationStatus.DEPLOY_FAILED or restart_cannot_fix(*failed[1:])):
            deployment, error_type, message = failed
            retried = "" if status == ApplicationStatus.DEPLOY_FAILED else " (not retried: a restart cannot fix it)"
            _give_up(name, f"Serve app {name!r}: a {deployment} replica failed to start{retried}: "
                           f"{error_type}: {message}")
        if status in (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY):
            _give_up(name, f"Serve app {name!r} failed to start: {_deployment_report(name)}")
        waited = time.monotonic() - started
        if waited > timeout_s:
            pending = _pending_bundles(name)
            if pending:
                from orca_math.common.capacity import describe

                never = "; ".join(f"its {dep} replica never got a node with "
                                  f"{' + '.join(describe(b) for b in bundles)}" for dep, bundles in pending.items())
                _give_up(name, f"Serve app {name!r} not ready after {waited:.0f} s: {never} (no node had it free "
                               f"and no autoscaler added one); free those resources or raise {timeout_setting}")
            # No placement group pending: the replicas are loading, or (those without a group, such
            # as the judge's) waiting for a node, which Serve's message says after 30 s.
            _give_up(name, f"Serve app {name!r} not ready after {waited:.0f} s (raise {timeout_setting} for a "
                           f"model that loads slower): {_deployment_report(name)}")
        time.sleep(0.5)


def _give_up(app_name: str, reason: str) -> None:
    from ray import serve

    serve.delete(app_name, _blocking=False)
    raise ServeReadinessError(reason)


def _http_ok(url: str, headers: dict[str, str] | None) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def delete_app(app_name: str, timeout_s: float) -> None:
    """Delete ``app_name`` and, if no other app runs, Serve; stop waiting after ``timeout_s``."""
    from ray import serve

    serve.delete(app_name, _blocking=False)
    deadline = time.monotonic() + timeout_s
    while app_name in serve.status().applications and time.monotonic() < deadline:
        time.sleep(0.5)
    if not serve.status().applications:
        # Serve's own shutdown may wait 30 s for its controller: on our clock instead.
        stopping = threading.Thread(target=serve.shutdown, daemon=True)
        stopping.start()
        stopping.join(max(deadline - time.monotonic(), 1.0))
