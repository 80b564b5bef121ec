"""What the machine can do, and the settings that follow from it (every ``auto`` in the configs).

- **Precision.** bf16 autocast is fast only where the hardware does bf16: a GPU that supports it, or
  a CPU with native bf16 (AVX512_BF16 or AMX on x86, BF16/SVE-BF16 on ARM). On any other CPU torch
  emulates it, measured ~20x slower than fp32 (a 2-core AMD EPYC Zen 3, AVX2 only: 1,089-1,109 ms
  against 41-54 ms per forward+backward of the demo's shape), so ``auto`` trains in fp32 there.
- **Attention** follows the precision on CPU: eager was measured faster under bf16 autocast, sdpa
  (transformers' default) under fp32 (docs/demo-results.md).
- **Kernels.** A demo run all in fp32 on x86 is put on torch's AVX2 kernels (``fp32_kernel_pins``): with
  AVX-512 ones its sums come in another order, and a seed's models and verdict differ.
- **Devices.** ``use_gpu: auto`` asks for GPUs only where the Ray cluster has some or its autoscaler
  could add some; a request no node can ever meet fails at once, naming the setting to change,
  instead of waiting forever for a GPU that will never come.

The choices are pure functions over a :class:`Machine`, so tests run them on a faked one.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from orca_math.common.capacity import Capacity

log = logging.getLogger(__name__)

Auto = Literal["auto"]
# The CPU flags (torch.cpu.get_capabilities names) under which bf16 math runs natively.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "sve_bf16", "bf16")
EMULATED_BF16_SLOWDOWN = "about 20x slower than fp32"


@dataclass(frozen=True)
class Machine:
    """The facts the ``auto`` settings depend on."""

    cpu_name: str
    cpu_bf16_flag: str | None  # the capability giving native bf16, None when torch would emulate it
    cuda: bool = False
    cuda_bf16: bool = False
    gpu_name: str | None = None
    # The vector ISA torch's CPU kernels dispatch to (AVX512, AVX2, ...): below what the flags
    # offer when ATEN_CPU_CAPABILITY lowers it, e.g. to time an AVX2-only CPU on an AVX-512 one.
    cpu_kernels: str | None = None

    def record(self) -> dict[str, Any]:
        """What a manifest keeps: the machine the choice was made on."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@lru_cache(maxsize=1)
def this_machine() -> Machine:
    """The machine this process runs on (a Ray worker answers for its own node)."""
    import torch

    caps = dict(torch.cpu.get_capabilities())
    cuda = torch.cuda.is_available()
    return Machine(
        cpu_name=_cpuinfo_field("model name") or str(caps.get("cpu_name") or caps.get("architecture", "unknown CPU")),
        cpu_bf16_flag=native_bf16_flag({name for name, has in caps.items() if has is True}),
        cuda=cuda,
        cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        cpu_kernels=torch.backends.cpu.get_cpu_capability(),
    )


def native_bf16_flag(flags: set[str] | frozenset[str]) -> str | None:
    """The first of ``flags`` that gives native bf16, None where torch would emulate it."""
    return next((f for f in NATIVE_BF16_FLAGS if f in flags), None)


def cpuinfo_flags() -> frozenset[str]:
    """This CPU's feature flags as ``/proc/cpuinfo`` lists them (x86 ``flags``, ARM ``Features``), read
    without torch: for what must be decided before torch reads its environment."""
    return frozenset((_cpuinfo_field("flags", "Features") or "").split())


def fp32_kernel_pins(precisions: list[tuple[bool | Auto, bool | Auto]], dtypes: list[str],
                     flags: frozenset[str], arch: str) -> dict[str, str]:
    """The environment that puts a CPU run on torch's and oneDNN's AVX2 kernels when all of it runs in
    fp32: every training ``(bf16, fp16)`` and vLLM ``dtype`` resolves to fp32 on the CPU ``flags``
    describe. With AVX-512 torch's own kernels add in another order than AVX2 ones, so the fp32 models,
    and a seed's verdict, differ between the two kinds of CPU. Pinned, two Xeons of different models
    printed the same tables to the digit, and the demo ran as fast as on AVX-512 kernels
    (docs/demo-results.md, section 000000000000000000000); vLLM's own compiled kernels are not pinned.
    Nothing where anything runs in bf16 (AVX2 kernels would emulate it), off x86, or without AVX2."""
    if arch not in ("x86_64", "AMD64") or "avx2" not in flags:
        return {}
    machine = Machine(cpu_name="this CPU", cpu_bf16_flag=native_bf16_flag(flags))
    if any(choose_precision(bf16, fp16, False, machine).bf16 for bf16, fp16 in precisions):
        return {}
    if any(choose_vllm_dtype(dtype, False, machine) != "float32" for dtype in dtypes):
        return {}
    return {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _cpuinfo_field(*names: str) -> str | None:
    """The value of the first ``/proc/cpuinfo`` line that starts with one of ``names`` (the first CPU's)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(names):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Precision:
    """Mixed precision for training: what was chosen, and why."""

    bf16: bool
    fp16: bool
    reason: str

    def record(self, machine: Machine) -> dict[str, Any]:
        return {"bf16": self.bf16, "fp16": self.fp16, "reason": self.reason, "machine": machine.record()}


def choose_precision(bf16: bool | Auto, fp16: bool | Auto, on_gpu: bool, machine: Machine) -> Precision:
    """Resolve ``bf16``/``fp16`` (each True, False or "auto") for a worker on ``machine``.

    auto: bf16 on a GPU that supports it, else fp16 on a GPU; on CPU bf16 autocast only where the
    CPU does bf16 natively, fp32 otherwise. An explicit setting stands; bf16 on a CPU that would
    emulate it is logged as the slowdown it is.
    """
    if on_gpu:
        if bf16 is True or fp16 is True:
            return Precision(bf16 is True, fp16 is True, "set in the config")
        if bf16 == "auto" and machine.cuda_bf16:
            return Precision(True, False, f"auto: {machine.gpu_name or 'the GPU'} supports bf16")
        if fp16 == "auto" and not machine.cuda_bf16:
            return Precision(False, True, f"auto: {machine.gpu_name or 'the GPU'} has no bf16, fp16 instead")
        return Precision(False, False, "fp32: set in the config")
    if fp16 is True:
        raise ValueError("fp16 mixed precision needs a GPU; use bf16: auto (or false) on CPU")
    if bf16 is True:
        if machine.cpu_bf16_flag is None:
            log.warning("bf16: true on %s, which has no native bf16 (no AVX512_BF16/AMX): torch emulates it, "
                        "%s; set bf16: auto or false", machine.cpu_name, EMULATED_BF16_SLOWDOWN)
            return Precision(True, False, f"set in the config; {machine.cpu_name} emulates bf16 ({EMULATED_BF16_SLOWDOWN})")
        return Precision(True, False, f"set in the config; {machine.cpu_name} has {machine.cpu_bf16_flag}")
    if bf16 == "auto" and machine.cpu_bf16_flag is not None:
        return Precision(True, False, f"auto: {machine.cpu_name} has native bf16 ({machine.cpu_bf16_flag})")
    if bf16 == "auto":
        return Precision(False, False, f"auto: fp32, {machine.cpu_name} has no native bf16 "
                                       f"(bf16 autocast would be {EMULATED_BF16_SLOWDOWN})")
    return Precision(False, False, "fp32: set in the config")


def choose_attention(attn_implementation: str | None, precision: Precision, on_gpu: bool) -> str | None:
    """The attention kernel: as set, else eager under bf16 autocast on CPU (measured faster there),
    else None (transformers' default, sdpa: faster in fp32 and on GPUs)."""
    if attn_implementation is not None:
        return attn_implementation
    return "eager" if precision.bf16 and not on_gpu else None


def choose_vllm_dtype(dtype: str, on_gpu: bool, machine: Machine) -> str:
    """vLLM's weight dtype: as set; auto is bf16 on a GPU or a CPU with native bf16, fp32 elsewhere."""
    if dtype != "auto":
        return dtype
    if on_gpu:
        return "bfloat16" if machine.cuda_bf16 or not machine.cuda else "float16"
    return "bfloat16" if machine.cpu_bf16_flag is not None else "float32"


# ------------------------------------------------------------------------------ the Ray cluster


def resolve_use_gpu(use_gpu: bool | Auto, capacity: Capacity | None = None) -> bool:
    """``use_gpu`` as a bool: auto means GPUs where the cluster has or could get them."""
    if use_gpu != "auto":
        return bool(use_gpu)
    from orca_math.common.capacity import cluster_capacity

    capacity = cluster_capacity() if capacity is None else capacity
    return capacity.totals().get("GPU", 0) > 0
