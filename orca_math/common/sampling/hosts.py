"""Engine hosts: Ray actors that keep vLLM imported, and their engine built, from one stage to the next.

A stage's ``map_batches`` actor used to build its own engine: 17 s on a 2-core CPU before the first
batch, 14 s of it a fresh process importing vLLM, and a demo starts six engines. Now the engines
live in actors, ``concurrency`` of them, that outlive a stage: the next stage reuses them when they
reserve the same resources. A host builds a new engine (4-6 s) only when the engine config changes; a
new model of the same architecture and tokenizer (the next round's student) only has its weights loaded
into the built engine, as RL trainers sync weights into their vLLM engines. The stage's own
``map_batches`` actors reserve nothing and hand their batches to the hosts.

The driver holds the hosts' handles (Ray collects an actor nobody holds), so they die with it, and
they hold their CPUs or GPUs until :func:`release_engines`: the recipe calls it before stages that
need them and at the end of a run; ``run_eval`` and ``run_practice`` at their end.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig
from orca_math.common.schema import stable_id

log = logging.getLogger(__name__)

# This driver's hosts: key (kind and index) -> (actor handle, its tensor-parallel placement group or
# None, the Ray job it belongs to: a driver that restarted Ray has none of the old ones left).
_HOSTS: dict[str, tuple[Any, Any, str]] = {}


def host_kind(engine: VLLMEngineConfig) -> str:
    """What a host reserves and sets up once (``engine.on_cluster()`` decided ``use_gpu``): hosts of
    another kind are released before these start."""
    fields = engine.model_dump(include={"kind", "use_gpu", "tensor_parallel_size", "num_cpus_per_engine",
                                        "cpu_kvcache_space_gib", "resources"}, mode="json")
    return f"{'gpu' if engine.use_gpu else 'cpu'}-{stable_id('engine-host', fields)[:10]}"


class EngineHost:
    """One process with at most one engine, rebuilt only when what vLLM is built with changes (the model,
    dtype, lengths...; not the batch size a stage hands it)."""

    def __init__(self):
        self.claimed_by: str | None = None
        self.built: tuple | None = None
        self.staged: tuple[str, str] | None = None  # (the model as named, the copy loaded: common/storage.py)
        self.llm = None

    def claim(self, lease: str) -> bool:
        """True for the first ``map_batches`` actor of a stage (``lease``) that asks."""
        if self.claimed_by == lease:
            return False
        self.claimed_by = lease
        return True

    def load(self, engine: VLLMEngineConfig, restage: bool = True) -> float:
        """Build ``engine`` unless it is the one held; returns the seconds it took. ``restage``: check
        the model's node-local copy against its files (once a lease; not per batch)."""
        from orca_math.common.sampling.vllm_sampler import build_llm, engine_kwargs, reload_weights
        from orca_math.common.storage import local_model

        started = time.perf_counter()
        if engine.kind == "canned":  # nothing to build
            return 0.0
        if engine.model:
            if restage or self.staged is None or self.staged[0] != engine.model:
                self.staged = (engine.model, local_model(engine.model))
            engine = engine.model_copy(update={"model": self.staged[1]})
        build = (sorted(engine_kwargs(engine).items()), engine.engine_in_process())
        if build == self.built:
            return time.perf_counter() - started
        if not (self._weights_only_change(engine, build) and reload_weights(self.llm, engine.model)):
            self.close()
            self.llm = build_llm(engine)
        self.built = build
        return time.perf_counter() - started

    def _weights_only_change(self, engine: VLLMEngineConfig, build: tuple) -> bool:
        """Whether the held engine differs from ``build`` only in weights: a new round's model of the same
        student swaps its weights in (0.03 s) where a new engine took 4-6 s on the demo's 2-core CPU."""
        from orca_math.common.sampling.vllm_sampler import weights_only_differ

        if not engine.reload_weights or self.llm is None or self.built is None:
            return False
        held, new = dict(self.built[0]), dict(build[0])
        same_but_model = (self.built[1], {**held, "model": None}) == (build[1], {**new, "model": None})
        return same_but_model and weights_only_differ(held["model"], new["model"])

    def sample(self, engine: VLLMEngineConfig, decoding: DecodingConfig, model_name: str,
               batch: dict[str, Any]) -> dict[str, list]:
        self.load(engine, restage=False)  # the lease staged it
        if engine.kind == "canned":
            from orca_math.common.sampling.canned import CannedSampler

            return CannedSampler(engine, decoding, model_name)(batch)
        from orca_math.common.sampling.vllm_sampler import VLLMSampler

        return VLLMSampler(engine, decoding, model_name, llm=self.llm)(batch)

    def close(self) -> None:
        if self.llm is None:
            return
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        self.llm, self.built = None, None
        gc.collect()
        cleanup_dist_env_and_memory()  # a second engine in this process needs vLLM's process group gone


@dataclass(frozen=True)
class EngineLease:
    """A stage's hosts, the token its ``map_batches`` actors claim them with, and the engine config they
    hold (``use_gpu`` decided)."""

    hosts: tuple
    token: str
    engine: VLLMEngineConfig


def _job() -> str:
    import ray

    return ray.get_runtime_context().get_job_id() if ray.is_initialized() else ""


def release_engines(gpu_only: bool = False) -> None:
    """Kill the engine hosts (only those on GPUs with ``gpu_only``), freeing what they reserve."""
    import ray

    for key in [k for k in _HOSTS if k.startswith("gpu-") or not gpu_only]:
        host, group, job = _HOSTS.pop(key)
        if job == _job():
            ray.kill(host)
            if group is not None:
                ray.util.remove_placement_group(group)


def lease_engines(engine: VLLMEngineConfig, retry: bool = True,
                  meanwhile: Callable[[], None] | None = None) -> EngineLease:
    """``engine.concurrency`` hosts with ``engine`` built, reusing the running ones of its kind.
    ``meanwhile`` runs while they start and build (the first eval starts the judge: 3 s less on 2 cores)."""
    import ray

    from orca_math.common.capacity import cluster_capacity, wait_started

    # An undecided ``use_gpu: auto`` would ask a CPU-only cluster for a GPU host and wait forever; a
    # request no node can meet fails here, naming the setting.
    capacity = cluster_capacity()
    engine = engine.on_cluster(capacity)
    kind = host_kind(engine)
    keys = [f"{kind}-{i}" for i in range(engine.concurrency)]
    if any(k not in keys or job != _job() for k, (_, _, job) in _HOSTS.items()):
        release_engines()  # hosts of another kind, count or Ray: their CPUs or GPUs may be the ones these need
    started, new = time.perf_counter(), [k for k in keys if k not in _HOSTS]
    for key in new:
        _HOSTS[key] = _start_host(engine)
    hosts = tuple(_HOSTS[k][0] for k in keys)
    loads = [h.load.remote(engine) for h in hosts]  # queued behind a new host's start
    if meanwhile is not None:
        meanwhile()
    try:
        # Placed within the start timeout (a cold node's boot where an autoscaler may add one), or one
        # line naming what never came; building the engine (a 7B model's download and load) is not bounded.
        timeout = capacity.start_timeout(engine.start_timeout_s)
        wait_started(f"{engine.concurrency} vLLM engine host(s)", engine.bundle(), engine.concurrency,
                     [_HOSTS[k][0].__ray_ready__.remote() for k in new], timeout)
        built = ray.get(loads)
    except ray.exceptions.RayActorError:
        if not retry or len(new) == len(keys):
            raise
        release_engines()  # a host died since the last stage (its engine crashed): start afresh, once
        return lease_engines(engine, retry=False)
    log.info("engine %s ready in %.1fs on %d host(s), %d started (%s), build %.1fs", engine.model,
             time.perf_counter() - started, len(hosts), len(new), kind, max(built))
    return EngineLease(hosts, uuid.uuid4().hex, engine)


def _start_host(engine: VLLMEngineConfig) -> tuple[Any, Any, str]:
    import ray

    from orca_math.common.sampling.ray_sampling import engine_resources

    options = engine_resources(engine)
    group = options["scheduling_strategy"].placement_group if "scheduling_strategy" in options else None
    return ray.remote(EngineHost).options(max_restarts=0, **options).remote(), group, _job()


class HostedSampler:
    """What a stage's ``map_batches`` actor samples with: its batches go to one host of ``lease``, with the
    engine config the lease decided."""

    def __init__(self, lease: EngineLease, decoding: DecodingConfig, model_name: str):
        import ray

        # One host per actor; an actor Ray Data restarted finds them all claimed and shares the first.
        self.host = next((h for h in lease.hosts if ray.get(h.claim.remote(lease.token))), lease.hosts[0])
        self.engine, self.decoding, self.model_name = lease.engine, decoding, model_name

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        import ray

        return ray.get(self.host.sample.remote(self.engine, self.decoding, self.model_name, batch))
