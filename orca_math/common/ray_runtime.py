"""Connecting to Ray: the cluster under ``ray job submit``, else a local instance."""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start or join Ray once per process.

    Under ``ray job submit`` RAY_ADDRESS is set and we join that cluster; locally a fresh
    instance starts. No runtime_env is set here: a job's ``--runtime-env-json`` env_vars and
    ``ray.init(runtime_env=...)`` cannot both be given (Ray refuses to merge them).
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # A local instance keeps its dashboard (on 127.0.0.1): the State API lives there, and Ray Train's
    # PlacementGroupCleaner asks it every second whether the train controller is alive. Without it
    # each poll fails with a warning (a third of the demo's output was that line).
    kwargs = {"address": address} if address else {"num_cpus": num_cpus, "include_dashboard": True,
                                                    "dashboard_host": "127.0.0.1"}
    on_main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if on_main_thread else None
    ray.init(ignore_reinit_error=True, log_to_driver=True, **kwargs)
    if callable(sigterm):
        # ray.init puts in its own SIGTERM handler, which drains the node for up to 30 s before
        # exiting. Keep the command's (`orca-math` stops on SIGTERM as on Ctrl-C, in seconds); Ray's
        # exit hook still stops a local instance.
        signal.signal(signal.SIGTERM, sigterm)
    log.info("Ray ready: %s", ray.cluster_resources())
