"""Fan student sampling out over Ray Data: one vLLM engine per actor, ``concurrency`` actors."""

from __future__ import annotations

from typing import Any

from orca_math.sampling.config import DecodingConfig, VLLMEngineConfig
from orca_math.sampling.vllm_sampler import VLLMSampler


def engine_resources(engine: VLLMEngineConfig) -> dict[str, Any]:
    """Ray resources for one engine actor.

    CPU: ``num_cpus`` only (asking for a GPU there waits forever). GPU, TP=1: one GPU per actor.
    GPU, TP>1: the actor holds no GPU itself; it runs in a placement group of TP GPU bundles that
    vLLM's Ray executor fills with its workers. ``engine.resources`` (custom resources such as
    ``{sampler: 1}``) go on the actor, or on the first bundle of the TP group: STRICT_PACK then
    keeps the whole engine on a node that has them.
    """
    custom = {"resources": dict(engine.resources)} if engine.resources else {}
    if not engine.use_gpu:
        return {"num_cpus": engine.num_cpus_per_engine, **custom}
    if engine.tensor_parallel_size == 1:
        return {"num_cpus": 1, "num_gpus": 1, **custom}

    def placement() -> dict[str, Any]:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundles = [{"GPU": 1, "CPU": 1} for _ in range(engine.tensor_parallel_size)]
        bundles[0].update(engine.resources)
        pg = ray.util.placement_group(bundles, strategy="STRICT_PACK")
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)}

    return {"num_cpus": 0, "num_gpus": 0, "ray_remote_args_fn": placement}


def sample_dataset(ds, engine: VLLMEngineConfig, decoding: DecodingConfig, model_name: str | None = None):
    """``ds`` with columns ``problem_id``, ``prompt`` -> a Dataset of sample-schema rows (lazy)."""
    engine = engine.on_cluster()
    return ds.map_batches(
        VLLMSampler,
        fn_constructor_kwargs={"engine": engine, "decoding": decoding, "model_name": model_name},
        batch_size=engine.batch_size,
        concurrency=engine.concurrency,
        **engine_resources(engine),
    )


def sample_rows(rows: list[dict], engine: VLLMEngineConfig, decoding: DecodingConfig,
                model_name: str | None = None) -> list[dict]:
    """Sample every prompt in ``rows`` (dicts with ``problem_id``, ``prompt``) through Ray Data."""
    import ray.data

    if not rows:
        return []
    ds = ray.data.from_items([{"problem_id": r["problem_id"], "prompt": r["prompt"]} for r in rows])
    return sample_dataset(ds, engine, decoding, model_name).take_all()
