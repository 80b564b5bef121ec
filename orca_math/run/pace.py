"""How long each stage of a CPU run should take on this machine, from a few seconds of measured speed.

``measure_pace`` times the student's own shape (``tiny_model``) at the two things that take a run's
time: training steps at the SFT batch size, in the precision training will choose, and decoding
steps of a batch of sequences with a KV cache and top-p's look at the most likely tokens, the kind of
step a vLLM engine repeats. ``stage_seconds`` turns each planned stage's work (its steps, problems and
samples, read from the configs) into seconds at that pace. ``WORK`` converts them: how many bench
training steps one SFT step is worth, how many bench decoding steps one sample, measured side by side
on one machine. A table of seconds holds for the machine it was measured on; these ratios follow the
speed of the one they run on (the bench sees its kernels, precision and clock; docs/demo-results.md).
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass

from orca_math.plan.core import KNOWN_SETS
from orca_math.run.config import StageConfigs

log = logging.getLogger(__name__)

# Work in bench units, measured side by side with the bench on a 2-core Intel Xeon (family 6, model 207)
# in fp32 on torch's AVX2 kernels, on the demo's student, then scaled so that the first lines of eight
# whole runs came out right on average (docs/demo-results.md). When the bench's decoding step stopped
# sorting the vocabulary (as the engines had), its units were rescaled by the old step over the new one
# (1.68, side by side) and practice samples refitted on whole runs. ``run`` was fitted on three whole
# runs once the engines took each round's weights in place. The bench times the student's own shape;
# how many bench units a stage is still depends a little on that shape.
BENCH_LENGTH = 64       # tokens per training row in the bench: about a world problem and its solution
BENCH_SEQS = 128        # sequences decoded together in the bench
WORK = {
    "sft_step": 1.52,       # one step on the SFT set (SFT, the control: padded rows of 40-330 tokens), in bench training steps
    "sft_start": 438.0,     # such a stage's 19K rows read, checked and tokenized, its trainer and its save
    "round_step": 1.26,     # one step on a round's positives (world problems: shorter rows)
    "round_start": 99.0,
    "eval_sample": 0.49,    # one greedy completion of an eval problem, in bench decoding steps
    "practice_sample": 0.30,  # one of a practice problem's samples (they share its prompt), in bench decoding steps
    "sampling_stage": 292.0,  # a sampling stage's engine builds, Ray Data and judge calls, in bench decoding steps
    "first_sampling": 1810.0,  # the first one's engine hosts and judge replica starting, in bench decoding steps
    "generate": 1170.0,     # AgentInstruct by the symbolic teacher, in bench decoding steps
    "world": 830.0,         # the world's problems
    "judge": 460.0,
    "other": 106.0,         # the student, seeds, prefs
    "run": 900.0,           # the run's Ray starting, and at its end the judge and engines let go, the results written
}
RFT_ROWS_PER_PROBLEM = 0.8  # a round's training rows per practiced problem (positives, mastered left out)


@dataclass(frozen=True)
class Pace:
    """Seconds per unit of work on this machine: one training step of the student at the SFT batch,
    one decoding step of ``BENCH_SEQS`` sequences."""

    train_step_s: float
    decode_step_s: float
    precision: str


def measure_pace(cfgs: StageConfigs, seconds: float = 3.0) -> Pace:
    """Time the student's shape for about ``seconds`` each at training and at decoding (random
    weights, random tokens: only the speed matters). On a 2-core VM, readings 1.5 s long, taken 2 s
    apart in one quiet process, ranged 1.45x (docs/demo-results.md): a longer window averages more of it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from orca_math.common.hardware import choose_precision, this_machine

    shape = cfgs.tiny_model
    precision = choose_precision(cfgs.sft.bf16, cfgs.sft.fp16, False, this_machine())  # as SFT will on a CPU
    config = LlamaConfig(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                         intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_layers,
                         num_attention_heads=shape.num_heads, num_key_value_heads=shape.num_heads)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randint(4, shape.vocab_size, (cfgs.sft.per_device_batch_size, BENCH_LENGTH))

    def train_step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.bf16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    prompts = torch.randint(4, shape.vocab_size, (BENCH_SEQS, BENCH_LENGTH // 2))
    first_k = cfgs.practice.engine.cpu_top_p_first_k

    def decode_steps() -> int:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.bf16):
            out = model(input_ids=prompts, use_cache=True)
            cache, steps = out.past_key_values, 8
            for _ in range(steps):
                logits = out.logits[:, -1, :].float()
                # top-p's first look at the most likely tokens (top_p.py), or vLLM's sort
                logits.softmax(dim=-1).topk(first_k, dim=-1) if first_k else logits.sort(dim=-1)
                out = model(input_ids=logits.argmax(-1, keepdim=True), past_key_values=cache, use_cache=True)
        return steps

    model.train()
    train_step_s = _per_unit(lambda: train_step() or 1, seconds)
    model.eval()
    return Pace(train_step_s, _per_unit(decode_steps, seconds), "bf16" if precision.bf16 else "fp32")


def _per_unit(run, seconds: float) -> float:
    """Seconds per unit of ``run()`` (which returns how many units it did): the median call, after two
    warm-up calls (the first calls build kernels and grow the allocator; a stall in one call is not the pace)."""
    run(), run()
    rates: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(rates) < 3:
        t0 = time.perf_counter()
        units = run()
        rates.append((time.perf_counter() - t0) / units)
    median = statistics.median(rates)
    log.info("pace bench: %d calls, median %.5f s, fastest %.5f s, slowest %.5f s a unit",
             len(rates), median, min(rates), max(rates))
    return median


ROUND_TRAINING_KINDS = ("rft", "dpo", "kto")
TRAINING_KINDS = ("sft", "control", *ROUND_TRAINING_KINDS)
SAMPLING_KINDS = ("eval", "practice")


def _stage_kind(stage: str) -> str:
    return "control" if stage == "sft-control" else stage.split("-", 1)[0]


def bench_units(planned: list[str]) -> dict[str, str]:
    """The part of the bench each planned stage's time follows: ``train`` (training steps), ``sample``
    (decoding steps), ``other`` (rows through Ray Data: priced in decoding steps, not measured by
    them), and ``starts`` for the first sampling stage, mostly the engine hosts and the judge starting."""
    kinds = {stage: _stage_kind(stage) for stage in planned}
    first = next((s for s in planned if kinds[s] in SAMPLING_KINDS), None)
    return {stage: "starts" if stage == first else "train" if kind in TRAINING_KINDS
            else "sample" if kind in SAMPLING_KINDS else "other" for stage, kind in kinds.items()}


def stage_seconds(stage: str, cfgs: StageConfigs, pace: Pace) -> float:
    """Expected seconds of one planned stage (its name as the recipe gives it) at ``pace``."""
    run, kind = cfgs.run, _stage_kind(stage)
    train, decode = pace.train_step_s, pace.decode_step_s
    batch = cfgs.pref_train.per_device_batch_size * cfgs.pref_train.gradient_accumulation_steps
    round_steps = cfgs.pref_train.epochs * RFT_ROWS_PER_PROBLEM * (run.practice_limit or 0) / batch
    steps = {"sft": cfgs.sft.max_steps or 0, "control": run.rounds * round_steps}.get(kind, round_steps)
    if kind in ("sft", "control"):
        return (WORK["sft_step"] * steps + WORK["sft_start"]) * train
    if kind in ROUND_TRAINING_KINDS:
        return (WORK["round_step"] * steps + WORK["round_start"]) * train
    if kind in SAMPLING_KINDS:
        problems = (cfgs.world.n_test if run.world else cfgs.eval.limit or KNOWN_SETS["gsm8k-test"]) \
            if kind == "eval" else run.practice_limit or 0
        n = cfgs.eval.decoding.n if kind == "eval" else cfgs.practice.decoding.n
        return (WORK[f"{kind}_sample"] * problems * n + WORK["sampling_stage"]) * decode
    return WORK.get(kind, WORK["other"]) * decode


def expected_seconds(planned: list[str], cfgs: StageConfigs, pace: Pace) -> dict[str, float]:
    """Each planned stage's expected seconds at ``pace``; the first sampling stage also starts the
    engine hosts and the judge, which the later ones reuse."""
    expected = {stage: stage_seconds(stage, cfgs, pace) for stage in planned}
    for stage, unit in bench_units(planned).items():
        if unit == "starts":
            expected[stage] += WORK["first_sampling"] * pace.decode_step_s
    return expected


def run_seconds(pace: Pace) -> float:
    """The run's own expected seconds besides its stages: Ray starting before the first, and after the
    last the judge and engines let go and the results written."""
    return WORK["run"] * pace.decode_step_s
