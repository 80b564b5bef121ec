"""Stage metrics: what a driver records reaches Ray's Prometheus exporter (what Grafana charts).

The recipe as a real `ray job submit` job, with its metrics on the head, is tests/test_cluster_run.py.
"""

from __future__ import annotations

import os
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


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
