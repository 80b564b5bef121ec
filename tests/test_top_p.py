"""Top-p on CPU engines: the same tokens kept as vLLM's sort keeps, for a fraction of its time."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
sampler_ops = pytest.importorskip("vllm.v1.sample.ops.topk_topp_sampler")
pytest.importorskip("vllm._C")  # the CPU sampler's kernels

from orca_math.common.sampling.top_p import top_p_from_top_k, use_top_k_first  # noqa: E402


def _vllm_sort(logits, k, p):
    return sampler_ops.apply_top_k_top_p_pytorch(logits, k, p, allow_cpu_sync=True)


def _logits(rows: int, sharpness: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 2048, generator=generator) * sharpness


@pytest.fixture
def vllms_own():
    use_top_k_first(0)  # whatever an earlier engine in this process installed
    yield sampler_ops.apply_top_k_top_p
    use_top_k_first(0)


def test_the_same_tokens_stay_as_under_vllms_sort_peaked_flat_and_p_1():
    """Peaked rows (a trained student) are decided by their 16 largest tokens; flat ones and p = 1
    go to the sort; every row keeps exactly vLLM's nucleus."""
    decided_by_top_k = 0
    for seed, sharpness in enumerate((0.5, 2.0, 8.0, 20.0)):
        logits = _logits(256, sharpness, seed)
        p = torch.full((256,), 0.95)
        p[:8], p[8:16] = 1.0, 0.5
        expected = _vllm_sort(logits.clone(), None, p) == float("-inf")
        got = top_p_from_top_k(logits.clone(), p, 16, _vllm_sort) == float("-inf")
        assert torch.equal(got, expected), f"sharpness {sharpness}"
        decided_by_top_k += int((expected.sum(dim=1) >= 2048 - 16).sum())
    assert 256 < decided_by_top_k < 4 * (256 - 8)  # both paths were taken: not every row with p < 1 was decided by its top 16


def test_vllms_cpu_sampler_draws_the_same_tokens_and_vllms_sort_comes_back(vllms_own):
    """Through vLLM's own CPU sampler (top-k with top-p stays vLLM's): the same draws; 0 restores it."""
    own = vllms_own
    sampler = sampler_ops.TopKTopPSampler()
    logits, p = _logits(64, 8.0, 7), torch.full((64,), 0.95)

    def draw():
        torch.manual_seed(0)  # the sampler's per-row noise seeds come from torch's generator
        return sampler.forward_cpu(logits.clone(), {}, None, p)[0]

    expected = draw()
    use_top_k_first(16)
    assert sampler_ops.apply_top_k_top_p is not own
    assert torch.equal(draw(), expected)
    k = torch.full((64,), 5)
    assert torch.equal(sampler_ops.apply_top_k_top_p(logits.clone(), k, p), own(logits.clone(), k, p))
    use_top_k_first(32)  # again: a wrapper over vLLM's function, not over the last wrapper
    use_top_k_first(0)
    assert sampler_ops.apply_top_k_top_p is own
