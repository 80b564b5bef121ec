"""Engine hosts: one process keeps vLLM (and its engine) from one stage to the next, and lets go on request."""

from __future__ import annotations

import pytest

from orca_math.common.sampling.config import GREEDY, DecodingConfig, VLLMEngineConfig
from orca_math.common.sampling.hosts import _HOSTS, HostedSampler, host_kind, lease_engines, release_engines
from orca_math.common.sampling.top_p import use_top_k_first

pytestmark = pytest.mark.slow

CANNED = VLLMEngineConfig(kind="canned", use_gpu=False, num_cpus_per_engine=0.5, concurrency=2)
BATCH = {"problem_id": ["p1", "p2"], "prompt": ["Q: 1 + 1?", "Q: 2 + 2?"]}


def _hosts() -> dict[str, int]:
    """This driver's engine hosts: key -> process id."""
    import os

    import ray

    return {key: ray.get(host.__ray_call__.remote(lambda _: os.getpid())) for key, (host, _, _) in _HOSTS.items()}


@pytest.fixture
def no_hosts(ray_local):
    release_engines()
    yield
    release_engines()
    assert _hosts() == {}


def test_a_stage_reuses_the_hosts_of_its_kind_and_replaces_others(no_hosts):
    lease = lease_engines(CANNED)
    first = _hosts()
    assert len(first) == 2 and all(host_kind(CANNED) in name for name in first)
    # The next stage (another model: a canned engine builds nothing) finds the same processes, and
    # what it does meanwhile (the first eval starts the judge) runs once, before the lease is handed over.
    meanwhile: list[int] = []
    lease_engines(CANNED.model_copy(update={"model": "M2"}), meanwhile=lambda: meanwhile.append(len(_HOSTS)))
    assert _hosts() == first and meanwhile == [2]
    # Each map_batches actor of a stage claims its own host; one Ray Data restarted shares the first.
    samplers = [HostedSampler(lease, DecodingConfig(n=3), "M1") for _ in range(3)]
    assert len({s.host for s in samplers[:2]}) == 2 and samplers[2].host == lease.hosts[0]
    out = samplers[1](BATCH)
    assert out["problem_id"] == ["p1"] * 3 + ["p2"] * 3 and set(out["model"]) == {"M1"}
    # Other resources are another kind: the old hosts go first (they may hold the CPUs needed).
    wider = CANNED.model_copy(update={"num_cpus_per_engine": 1.0, "concurrency": 1})
    lease_engines(wider)
    now = _hosts()
    assert len(now) == 1 and not set(now) & set(first)


def test_a_lease_decides_auto_and_refuses_what_no_node_has(no_hosts):
    """Called without a stage's own ``on_cluster()``: ``use_gpu: auto`` on this CPU-only Ray gets CPU
    hosts, and a GPU no node has fails at once, naming the setting, instead of waiting for one."""
    from orca_math.common.capacity import ClusterTooSmallError

    assert lease_engines(CANNED.model_copy(update={"use_gpu": "auto"})).engine == CANNED
    assert set(_hosts()) == {f"{host_kind(CANNED)}-0", f"{host_kind(CANNED)}-1"}
    with pytest.raises(ClusterTooSmallError, match="engine.use_gpu"):
        lease_engines(CANNED.model_copy(update={"use_gpu": True}))


def test_release_can_spare_the_cpu_hosts(no_hosts):
    lease_engines(CANNED)
    release_engines(gpu_only=True)  # training in the driver on a GPU needs only the GPU hosts gone
    assert len(_hosts()) == 2
    release_engines()
    assert _hosts() == {}


def _next_round(model, out):
    """``model`` as the next round would leave it: the same config and tokenizer, other weights."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, out)
    weights = load_file(out / "model.safetensors")
    torch.manual_seed(0)
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in weights.items()}, out / "model.safetensors",
              metadata={"format": "pt"})
    return out


def test_one_process_swaps_in_a_rounds_weights_and_builds_anew_for_another_model(no_hosts, tiny_model, tmp_path):
    """eval-M1 -> practice-1 on the same model: nothing rebuilt. The next round's model: its weights are
    loaded into the built engine. Another tokenizer: a new engine in the same process (no new vLLM
    import). Every way, the samples are those a fresh process gives."""
    import ray

    from orca_math.tiny_model.config import TinyModelConfig
    from orca_math.tiny_model.core import build_tiny_model

    trained = _next_round(tiny_model, tmp_path / "M2")
    other = build_tiny_model(tmp_path / "other", TinyModelConfig(seed=1))  # another tokenizer
    engine = VLLMEngineConfig(model=str(tiny_model), use_gpu=False, max_model_len=256, batch_size=8)
    trained_engine, other_engine = (engine.model_copy(update={"model": str(m)}) for m in (trained, other))
    decoding = DecodingConfig(n=2, max_tokens=16)
    greedy = GREEDY.model_copy(update={"max_tokens": 16})
    # Prompts of several KV blocks: the engine's prefix cache would serve them again after a swap.
    batch = {"problem_id": ["p1", "p2"], "prompt": [f"Q: {' '.join(['1 + 1'] * 40)}?", "Q: 2 + 2?"]}

    def sample(eng, dec):
        return HostedSampler(lease_engines(eng), dec, "M")(batch)["text"]

    def mark_engine():  # an id() could come back for a new engine built where the old one was freed
        ray.get(host.__ray_call__.remote(lambda h: setattr(h.llm, "test_mark", True)))

    def same_engine() -> bool:
        return ray.get(host.__ray_call__.remote(lambda h: getattr(h.llm, "test_mark", False)))

    first = sample(engine, greedy)
    (pid,) = set(_hosts().values())
    drawn = sample(engine, decoding)
    assert drawn and sample(engine, greedy) == first
    (host,) = lease_engines(engine).hosts
    mark_engine()
    assert ray.get(host.load.remote(engine)) < 0.5 and same_engine()  # the same engine: kept
    # Top-p through the largest tokens first (top_p.py) draws what vLLM's sort of every row draws.
    ray.get(host.__ray_call__.remote(lambda _: use_top_k_first(0)))
    assert sample(engine, decoding) == drawn
    ray.get(host.__ray_call__.remote(lambda _: use_top_k_first(engine.cpu_top_p_first_k)))

    trained_greedy, trained_drawn = sample(trained_engine, greedy), sample(trained_engine, decoding)
    assert trained_greedy != first and same_engine()  # the new weights, in the engine built for M1
    assert sample(engine, greedy) == first and same_engine()  # and back: nothing of M2 kept
    assert sample(trained_engine.model_copy(update={"reload_weights": False}), greedy) == trained_greedy
    assert not same_engine()  # built anew on request: the same samples
    mark_engine()
    others = sample(other_engine, greedy)
    assert others != first and not same_engine()  # another tokenizer: a new engine
    assert set(_hosts().values()) == {pid}  # one process all along
    release_engines()
    assert sample(other_engine, greedy) == others  # what a fresh process gives
    assert set(_hosts().values()) != {pid}
    release_engines()
    assert sample(trained_engine, decoding) == trained_drawn


def test_a_lease_on_a_node_type_no_node_offers_fails_in_seconds_naming_it(no_hosts):
    """Engines pinned to ``{sampler: 1}`` on a cluster without sampler nodes (nor an autoscaler that
    could add one): refused at once, not a wait for the 16th engine that never comes."""
    import time

    from orca_math.common.capacity import ClusterTooSmallError

    started = time.monotonic()
    with pytest.raises(ClusterTooSmallError, match=r"no node has \{CPU: 1, sampler: 1\}.*engine.resources"):
        lease_engines(CANNED.model_copy(update={"resources": {"sampler": 1}, "num_cpus_per_engine": 1.0}))
    assert time.monotonic() - started < 5 and _hosts() == {}


def test_a_cpu_engine_inspects_its_model_class_in_its_own_process(tiny_model, tmp_path, monkeypatch):
    """vLLM inspects a model class its cache has not seen in a fresh interpreter (~8 s of CPU per host
    on a new machine); a CPU engine's process inspects the class it loads anyway, and starts none."""
    import subprocess

    from vllm import ModelRegistry

    from orca_math.common.sampling.vllm_sampler import inspect_model_in_process

    def no_interpreter(*args, **kwargs):
        raise AssertionError(f"vLLM started a process to inspect a model class: {args}")

    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path))  # a new machine: nothing cached
    assert inspect_model_in_process(str(tiny_model)) == ["LlamaForCausalLM"]
    monkeypatch.setattr(subprocess, "run", no_interpreter)
    info = ModelRegistry.models["LlamaForCausalLM"].inspect_model_cls()
    assert info.is_text_generation_model and not (tmp_path / "modelinfos").exists()
    # An HF id (or a folder without config.json) is left to vLLM.
    assert inspect_model_in_process("org/some-model") == [] and inspect_model_in_process(str(tmp_path)) == []
