"""Sampling and training land on the node types their resource requests name (simulated cluster).

The scenario (tests/multinode_placement.py) starts its own three-node Ray cluster, so it runs in a
subprocess: the session's ``ray_local`` may already hold a Ray instance in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orca_math.common.sampling.config import VLLMEngineConfig
from orca_math.common.sampling.ray_sampling import engine_resources
from orca_math.train.config import TrainScalingConfig

REPO = Path(__file__).resolve().parents[1]


def test_engine_custom_resources_go_on_the_actor():
    cpu = VLLMEngineConfig(use_gpu=False, num_cpus_per_engine=1, resources={"sampler": 1})
    assert engine_resources(cpu) == {"num_cpus": 1, "resources": {"sampler": 1}}
    gpu = VLLMEngineConfig(use_gpu=True, resources={"sampler": 1})
    assert engine_resources(gpu) == {"num_cpus": 1, "num_gpus": 1, "resources": {"sampler": 1}}
    assert "resources" not in engine_resources(VLLMEngineConfig(use_gpu=True))


def test_tensor_parallel_engine_puts_custom_resources_in_its_placement_group(monkeypatch):
    import ray.util

    bundles_seen = []
    monkeypatch.setattr(ray.util, "placement_group",
                        lambda bundles, strategy: bundles_seen.append((bundles, strategy)) or object())
    args = engine_resources(VLLMEngineConfig(use_gpu=True, tensor_parallel_size=2, resources={"sampler": 1}))
    assert "resources" not in args and args["num_gpus"] == 0
    assert bundles_seen == [([{"GPU": 1, "CPU": 1, "sampler": 1}, {"GPU": 1, "CPU": 1}], "STRICT_PACK")]


@pytest.mark.parametrize("bad", [{"GPU": 1}, {"CPU": 2}, {"sampler": -1}])
def test_engine_resources_must_be_custom_and_non_negative(bad):
    with pytest.raises(ValueError, match="resources"):
        VLLMEngineConfig(use_gpu=True, resources=bad)


def test_train_scaling_config_becomes_ray_scaling_config():
    scaling = TrainScalingConfig(num_workers=8, use_gpu=True, resources_per_worker={"CPU": 8, "GPU": 1, "trainer": 1},
                                 placement_strategy="STRICT_PACK")
    ray_cfg = scaling.ray_scaling_config()
    assert ray_cfg.num_workers == 8 and ray_cfg.use_gpu
    assert ray_cfg.resources_per_worker == {"CPU": 8, "GPU": 1, "trainer": 1}
    assert ray_cfg.placement_strategy == "STRICT_PACK"


@pytest.mark.slow
def test_sampling_and_training_land_on_their_node_types(tmp_path):
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/multinode_placement.py"), str(tmp_path)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail("multi-node scenario timed out:\n" + out[-4000:])
    results = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and results, out[-4000:]
    placed = json.loads(results[-1].removeprefix("RESULT "))
    assert len({placed["head"], placed["sampler"], placed["trainer"]}) == 3
    # Every engine host on the sampler node, every training worker on the trainer node: the head had
    # free CPUs (and the driver) the whole time, so only the custom resources kept them off it.
    assert placed["sampling_nodes"] == [placed["sampler"]]
    assert placed["training_nodes"] == [placed["trainer"]]
