"""The tiny recipe on a simulated multi-node cluster (tests/cluster_sim.py), submitted with ``ray job submit``.

Sampling on the sampler node, training with two Ray Train workers on the trainer node, the run folder
the only hand-over between stages; ``ray job stop`` mid-stage and a resubmit resume the run. A node
that cannot see the run folder stops a run in seconds, in one line naming it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from cluster_sim import SimCluster
from test_metrics import scrape, wait_for
from test_pipeline_run import STAGES, small_run_config

from orca_math.common.manifest import RunManifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, gsm8k_dir):
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed for the node that cannot see the run folder")
    root = tmp_path_factory.mktemp("sim")
    sim = SimCluster(root, hide=("gpu_trainer", str(root / "private"))).start()
    yield sim
    sim.stop()


def cluster_config(path: Path, gsm8k_dir: Path) -> Path:
    """The test-size recipe with cluster.yaml's placement: engines on ``sampler``, two training
    workers on ``trainer`` (configs/orca_math_mistral7b.yaml's shape without GPUs). Data paths are
    absolute: the job runs from an uploaded copy of the repo, beside no shared/ folder."""
    cfg = yaml.safe_load(small_run_config(path).read_text())
    cfg["run"]["seeds"] = str(gsm8k_dir / "train.jsonl")
    cfg["eval"]["data"] = str(gsm8k_dir / "test.jsonl")
    for section in ("eval", "practice"):
        cfg[section]["engine"].update(resources={"sampler": 1}, concurrency=1)
    for section in ("sft", "kto"):
        cfg[section]["scaling"] = {"use_gpu": False, "local_mode": False, "num_workers": 2, "max_failures": 0,
                                   "resources_per_worker": {"CPU": 1, "trainer": 1}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def wait_for_stage(job, manifest: Path, stage: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if manifest.exists() and (RunManifest(manifest).get(stage) or {}).get("status") == "running":
            return
        if job.poll() is not None:
            pytest.fail(f"the job ended before {stage} started:\n" + job.communicate()[0][-4000:])
        time.sleep(0.5)
    pytest.fail(f"{stage} never started")


def test_the_recipe_runs_across_node_types_and_a_stopped_job_resumes(cluster, tmp_path, gsm8k_dir):
    from ray.util.state import list_actors, list_nodes

    config = cluster_config(tmp_path / "run.yaml", gsm8k_dir)
    run_dir = cluster.root / "runs" / "r1"
    args = ("ray_jobs/run.py", "--config", str(config), "--out", str(run_dir))
    first = cluster.job(*args, submission_id="run-1", wait=False)
    wait_for_stage(first, run_dir / "manifest.json", "kto-1", timeout=900)
    time.sleep(4)  # into training: workers up, steps under way
    stopped = cluster.ray("job", "stop", "--address", cluster.address, "run-1")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    first.communicate(timeout=120)
    before = RunManifest(run_dir / "manifest.json")
    assert before.get("kto-1")["status"] in ("running", "failed")

    second = cluster.job(*args, submission_id="run-2")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    after = RunManifest(run_dir / "manifest.json")
    assert [s for s in STAGES if after.get(s)["status"] == "done"] == STAGES
    # Resumed, not redone: every stage the first job finished kept its finish time.
    for name in STAGES[:STAGES.index("kto-1")]:
        assert after.get(name)["finished_at"] == before.get(name)["finished_at"], name
    assert json.loads((run_dir / "results.json").read_text())[-1]["stage"] == "eval-M2"
    # The drivers' stage counters reached the head's Prometheus exporter (what Grafana charts).
    seeds_rows = wait_for("orca_math metrics on the head", lambda: scrape(
        cluster.ports["metrics-export-port"], "ray_orca_math_rows_processed_total"), timeout_s=30)
    assert any('stage="seeds"' in line and line.endswith(" 16.0") for line in seeds_rows), seeds_rows

    # Placement: engine hosts on the sampler node, training workers on the trainer node, nothing on the head.
    node_type = {n.node_id: n.labels.get("ray.io/node-group") for n in list_nodes(address=cluster.address, detail=True)}
    actors = list_actors(address=cluster.address, detail=True, limit=10_000, raise_on_missing_output=False)
    placed: dict[str, set] = {}
    for a in (a for a in actors if a.node_id):  # an actor the stopped job asked for and never got has no node
        placed.setdefault(a.class_name, set()).add(node_type.get(a.node_id))
    assert placed["EngineHost"] == {"gpu_sampler"}
    assert placed["RayTrainWorker"] == {"gpu_trainer"}

    # The run folder is the only hand-over: every stage's inputs and outputs are under it (or the seed
    # data), nothing names a node's scratch, and training left no checkpoint in any node's scratch.
    text = (run_dir / "manifest.json").read_text()
    assert str(cluster.root / "scratch") not in text
    for name in STAGES:
        for key, value in (after.get(name).get("inputs") or {}).items():
            if "/" in str(value):
                assert str(value).startswith(("RUN_DIR", "gsm8k", str(Path(config).parent))) or \
                    "shared/data/gsm8k" in str(value), (name, key, value)
    leftovers = [p for p in (cluster.root / "scratch").rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


def test_a_node_that_cannot_see_the_run_folder_stops_the_run_in_seconds(cluster, tmp_path, gsm8k_dir):
    config = cluster_config(tmp_path / "run.yaml", gsm8k_dir)
    run_dir = cluster.root / "private" / "r"  # the trainer node has an empty tmpfs over private/
    started = time.monotonic()
    job = cluster.job("ray_jobs/run.py", "--config", str(config), "--out", str(run_dir), submission_id="hidden-1")
    took = time.monotonic() - started
    assert job.returncode != 0
    failure = [line for line in job.stdout.splitlines() if line.startswith("orca-math run failed:")]
    assert failure, job.stdout[-3000:]
    assert re.search(rf"StorageError: run folder {re.escape(str(run_dir))} is not shared: gpu_trainer node \S+ \(", failure[0])
    assert "cannot read" in failure[0] and str(run_dir) in failure[0]
    assert not (RunManifest(run_dir / "manifest.json").stages), "a stage ran before the check"
    assert took < 90  # job start-up (~10 s) and the check (~5 s); no stage ran
