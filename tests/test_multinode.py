"""Engines and training workers carry the resources that pin them to node types (the whole recipe on a
simulated three-node cluster, placement checked there, is tests/test_cluster_run.py)."""

from __future__ import annotations

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
