"""Student sampling on Ray: the resources of one engine (an engine host, hosts.py), and problems -> sample rows."""

from __future__ import annotations

from typing import Any

from orca_math.common.prompts import prompt_rows
from orca_math.common.sampling.config import VLLMEngineConfig


def engine_resources(engine: VLLMEngineConfig) -> dict[str, Any]:
    """Ray actor options for one engine (its host).

    CPU: ``num_cpus`` only (asking for a GPU there waits forever). GPU, TP=1: one GPU per actor.
    GPU, TP>1: the actor holds no GPU itself; it runs in a placement group of TP GPU bundles
    (made here) that vLLM's Ray executor fills with its workers. ``engine.resources``
    (custom resources such as ``{sampler: 1}``) go on the actor, or on the first bundle of the TP
    group: STRICT_PACK then keeps the whole engine on a node that has them.
    """
    custom = {"resources": dict(engine.resources)} if engine.resources else {}
    if not engine.use_gpu:
        return {"num_cpus": engine.num_cpus_per_engine, **custom}
    if engine.tensor_parallel_size == 1:
        return {"num_cpus": 1, "num_gpus": 1, **custom}
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    bundles = [{"GPU": 1, "CPU": 1} for _ in range(engine.tensor_parallel_size)]
    bundles[0].update(engine.resources)
    pg = ray.util.placement_group(bundles, strategy="STRICT_PACK")
    return {"num_cpus": 0, "num_gpus": 0,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)}


def sample_problems(sampler, problems: list[dict], template: str) -> list[dict]:
    """Sample rows (one per completion) for ``problems`` with ``sampler`` (columns in, sample columns out)."""
    cols = sampler({"problem_id": [p["id"] for p in problems],
                    "prompt": [r["prompt"] for r in prompt_rows(problems, template)],
                    "question": [p["question"] for p in problems],
                    "reference_answer": [p["reference_answer"] for p in problems]})
    return [dict(zip(cols, values)) for values in zip(*cols.values())]
