"""Where sampling and training land on a simulated multi-node cluster (run by tests/test_multinode.py).

Three Ray nodes on this machine, like cluster.yaml's node types: a head with free CPUs (the decoy:
Ray prefers the driver's node when nothing says otherwise), a ``sampler`` node and a ``trainer``
node. Sampling runs on the engine hosts ``lease_engines`` starts for an engine config (canned: no
model); training is a Ray Train ``TorchTrainer`` with the ``ScalingConfig`` built from a
``TrainScalingConfig``. The hosts and the training workers report
their node ids; the last line printed is ``RESULT {json}``.

    python tests/multinode_placement.py STORAGE_DIR
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import ray

from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig
from orca_math.common.sampling.hosts import HostedSampler, lease_engines
from orca_math.train.config import TrainScalingConfig

ENGINE = VLLMEngineConfig(kind="canned", use_gpu=False, num_cpus_per_engine=1, concurrency=2, batch_size=4,
                          resources={"sampler": 1})
SCALING = TrainScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1, "trainer": 1})


def train_loop(config: dict) -> None:
    import ray.train

    ctx = ray.train.get_context()
    node_id = ray.get_runtime_context().get_node_id()
    (Path(config["out"]) / f"rank{ctx.get_world_rank()}.node").write_text(node_id)


def sampling_nodes() -> list[str]:
    lease = lease_engines(ENGINE)
    sampled = HostedSampler(lease, DecodingConfig(n=2), "M1")({"problem_id": ["p1"], "prompt": ["q"]})
    assert sampled["problem_id"] == ["p1", "p1"]
    assert len(lease.hosts) == ENGINE.concurrency
    return sorted(set(ray.get([h.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
                               for h in lease.hosts])))


def training_nodes(storage: Path) -> list[str]:
    from ray.train import RunConfig
    from ray.train.torch import TorchTrainer

    out = storage / "ranks"
    out.mkdir(parents=True, exist_ok=True)
    TorchTrainer(train_loop, train_loop_config={"out": str(out)}, scaling_config=SCALING.ray_scaling_config(),
                 run_config=RunConfig(name="placement", storage_path=str(storage / "train"))).fit()
    nodes = [p.read_text() for p in sorted(out.glob("rank*.node"))]
    assert len(nodes) == SCALING.num_workers, nodes
    return sorted(set(nodes))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def main(storage: Path) -> None:
    from ray.cluster_utils import Cluster

    # Ray processes that look a cluster up by themselves (Ray Train's placement-group cleaner asks
    # the state API) would otherwise pick the newest Ray on this machine, maybe someone else's.
    port = free_port()
    os.environ["RAY_ADDRESS"] = f"{ray.util.get_node_ip_address()}:{port}"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "gcs_server_port": port})
    sampler = cluster.add_node(num_cpus=2, resources={"sampler": 2})
    trainer = cluster.add_node(num_cpus=2, resources={"trainer": 2})
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        result = {
            "head": cluster.head_node.node_id,
            "sampler": sampler.node_id,
            "trainer": trainer.node_id,
            "sampling_nodes": sampling_nodes(),
            "training_nodes": training_nodes(storage),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
