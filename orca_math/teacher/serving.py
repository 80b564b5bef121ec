"""Ray Serve plumbing shared by the teacher and the judge apps: HTTP options, deploy-and-wait.

Serve runs one HTTP proxy per Ray instance: the first app to start fixes host and port, and
later apps share them under their own route prefix. ``deploy_and_wait`` never blocks forever: an
app that cannot be placed (a GPU asked for on a CPU machine, too few CPUs) fails with a
ServeReadinessError naming what each deployment is waiting for, and is deleted again.
"""

from __future__ import annotations

import logging
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


def _deployment_report(app_name: str) -> str:
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return f"app {app_name!r} not found"
    parts = [f"app {app_name!r}: {app.status} {app.message}".strip()]
    for name, dep in app.deployments.items():
        parts.append(f"deployment {name}: {dep.status} {dep.message}".strip())
    return "; ".join(parts)


def deploy_and_wait(app, name: str, route_prefix: str, timeout_s: float, ready_url: str | None = None,
                    ready_headers: dict[str, str] | None = None):
    """Deploy ``app`` under ``name`` and wait (at most ``timeout_s``) until it serves; return its handle.

    An app already running under ``name`` is deleted first. Ready means Serve reports RUNNING and, when ``ready_url`` is given, a GET on it answers 200
    (the proxy learns routes a moment after the app is up). On failure or timeout the app is
    deleted and ServeReadinessError says what Serve reported.
    """
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    if name in serve.status().applications:
        # Redeploying in place would report the old version RUNNING before the new one is up.
        log.warning("Serve app %r is already running; replacing it", name)
        serve.delete(name)
    deadline = time.monotonic() + timeout_s
    serve.run_many([serve.RunTarget(target=app, name=name, route_prefix=route_prefix)],
                   wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    while True:
        app_status = serve.status().applications.get(name)
        status = app_status.status if app_status else None
        if status == ApplicationStatus.RUNNING and (ready_url is None or _http_ok(ready_url, ready_headers)):
            return serve.get_app_handle(name)
        if status in (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY):
            report = _deployment_report(name)
            serve.delete(name, _blocking=False)
            raise ServeReadinessError(f"Serve app {name!r} failed to start: {report}")
        if time.monotonic() > deadline:
            report = _deployment_report(name)
            serve.delete(name, _blocking=False)
            raise ServeReadinessError(
                f"Serve app {name!r} not ready after {timeout_s:.0f}s (a replica asking for a GPU or "
                f"more CPUs than the cluster has waits forever; see the num_cpus/accelerator settings): {report}"
            )
        time.sleep(0.5)


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
