"""Feasibility against node shapes (one bundle fits one node; counts fit the node types' limits), and
waits that end in one line naming what never came."""

from __future__ import annotations

import time

import pytest

from orca_math.common.capacity import (
    COLD_NODE_S,
    STATIC_CLUSTER_S,
    Capacity,
    ClusterTooSmallError,
    NodeShape,
    StartTimeoutError,
    check_feasible,
    wait_started,
)

# cluster.yaml's shape: a CPU head, up to 4 sampler nodes of 4 GPUs, up to 2 trainer nodes of 8.
HEAD = NodeShape("head", {"CPU": 16}, 1)
SAMPLER = NodeShape("gpu_sampler", {"CPU": 48, "GPU": 4, "sampler": 4}, 4)
TRAINER = NodeShape("gpu_trainer", {"CPU": 96, "GPU": 8, "trainer": 8}, 2)
AWS = Capacity(live=(HEAD,), types=(HEAD, SAMPLER, TRAINER), autoscaling=True)


def test_sixteen_sampler_engines_fit_the_sampler_types_limit_and_seventeen_do_not():
    engine = {"CPU": 1, "GPU": 1, "sampler": 1}
    check_feasible("16 vLLM engine(s)", engine, 16, "engine.concurrency", AWS)
    with pytest.raises(ClusterTooSmallError, match=r"17 x \{CPU: 1, GPU: 1, sampler: 1\} needed, at most 16 fit "
                                                   r"on gpu_sampler; change engine.concurrency"):
        check_feasible("17 vLLM engine(s)", engine, 17, "engine.concurrency", AWS)


def test_a_bundle_larger_than_any_node_fails_though_the_totals_would_hold_it():
    """8 GPUs in one placement-group bundle: the cluster has 32 sampler GPUs, but 4 per node."""
    with pytest.raises(ClusterTooSmallError, match=r"no node has \{GPU: 8, sampler: 1\} on one node"):
        check_feasible("a TP-8 engine", {"GPU": 8, "sampler": 1}, 1, "engine.tensor_parallel_size", AWS)


def test_a_custom_resource_no_node_type_offers_names_it_and_the_setting():
    with pytest.raises(ClusterTooSmallError, match=r"teacher: needs 1, cluster can have 0.*serve.teacher.resources"):
        check_feasible("the teacher", {"GPU": 1, "teacher": 1}, 1, "serve.teacher.resources", AWS)


def test_training_workers_pack_onto_trainer_nodes():
    worker = {"CPU": 8, "GPU": 1, "trainer": 1}
    check_feasible("16 workers", worker, 16, "scaling.num_workers", AWS)
    with pytest.raises(ClusterTooSmallError, match="at most 16 fit on gpu_trainer"):
        check_feasible("24 workers", worker, 24, "scaling.num_workers", AWS)
    # 13 CPUs per worker: 7 fit a 96-CPU node, so 14 in all, though 16 GPUs exist.
    with pytest.raises(ClusterTooSmallError, match="at most 14 fit"):
        check_feasible("16 workers", {**worker, "CPU": 13}, 16, "scaling.resources_per_worker", AWS)


def test_live_nodes_count_when_no_autoscaler_config_exists():
    static = Capacity(live=(NodeShape("a", {"CPU": 2}, 1), NodeShape("b", {"CPU": 2, "sampler": 2}, 1)))
    assert static.slots({"CPU": 1}) == 4 and static.slots({"CPU": 1, "sampler": 1}) == 2
    assert static.offered_by({"sampler": 1}) == ["b"]
    assert static.start_timeout(None) == STATIC_CLUSTER_S and AWS.start_timeout(None) == COLD_NODE_S
    assert AWS.start_timeout(5.0) == 5.0
    unlimited = Capacity(live=(), types=(NodeShape("elastic", {"GPU": 1}, -1),), autoscaling=True)
    check_feasible("1000 engines", {"GPU": 1}, 1000, "engine.concurrency", unlimited)
    assert unlimited.totals()["GPU"] == float("inf")


@pytest.mark.slow
def test_an_actor_that_cannot_be_placed_ends_the_wait_naming_the_resource(ray_local):
    """Feasible on paper (the driver's node has the CPUs), but taken: the wait ends at its timeout."""
    import ray

    hog = ray.remote(num_cpus=2)(type("Hog", (), {"ping": lambda self: 1})).remote()
    ray.get(hog.ping.remote())
    try:
        waiting = ray.remote(num_cpus=1)(type("Late", (), {})).remote()
        started = time.monotonic()
        with pytest.raises(StartTimeoutError, match=r"2 engine hosts: 1 of 2 x \{CPU: 1\} did not start within 2 s"):
            wait_started("2 engine hosts", {"CPU": 1}, 2, [waiting.__ray_ready__.remote()], 2.0)
        assert time.monotonic() - started < 5
        ray.kill(waiting)
    finally:
        ray.kill(hog)
