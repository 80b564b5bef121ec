"""The ``plan:`` section: the assumptions `orca-math plan` turns configs into GPU-hours and dollars with.

Every number here is an assumption, stated where it is declared with where it comes from
(/work/shared/CLUSTER-NOTES.md's arithmetic and published figures); override any with
``--set plan.KEY=VALUE``. None of it changes what a run does.
"""

from __future__ import annotations

from pydantic import Field

from orca_math.common.config import StageConfig

# Usable memory as the driver reports it (nvidia-smi's total), not the marketing figure.
GPU_MEMORY_GIB = {
    "A100-40GB": 40.0,      # 40,960 MiB
    "A100-80GB": 80.0,      # 81,920 MiB
    "H100-80GB": 79.6,      # 81,559 MiB
    "H200-141GB": 140.4,    # 143,771 MiB
    "L40S-48GB": 45.0,      # 46,068 MiB
    "A10G-24GB": 22.5,      # 23,028 MiB
    "L4-24GB": 22.5,        # 23,034 MiB
    "V100-16GB": 16.0,
    "V100-32GB": 32.0,
}

# EC2 instance families and their GPU (cluster.yaml's node types name an InstanceType).
INSTANCE_GPUS = {
    "p4d.": "A100-40GB", "p4de.": "A100-80GB", "p5.": "H100-80GB", "p5e.": "H200-141GB", "p5en.": "H200-141GB",
    "g6e.": "L40S-48GB", "g5.": "A10G-24GB", "g6.": "L4-24GB", "p3.": "V100-16GB", "p3dn.": "V100-32GB",
}

# On-demand USD per instance-hour, us-west-2 list prices (check yours: they change, and spot or
# reserved capacity is cheaper).
INSTANCE_PRICES = {
    "p4d.24xlarge": 32.77, "p4de.24xlarge": 40.97, "p5.48xlarge": 98.32,
    "g6e.xlarge": 1.861, "g6e.12xlarge": 10.493, "g6e.48xlarge": 30.131,
    "g5.12xlarge": 5.672, "m5.4xlarge": 0.768,
}


class PlanConfig(StageConfig):
    """What `orca-math plan` assumes: GPUs, throughputs, prices, data sizes and token counts."""

    # --- GPUs and memory
    gpu_memory_gib: dict[str, float] = Field(
        default_factory=lambda: dict(GPU_MEMORY_GIB),
        description="GPU memory by GPU type, GiB as nvidia-smi reports it.")
    instance_gpus: dict[str, str] = Field(
        default_factory=lambda: dict(INSTANCE_GPUS),
        description="GPU type of an instance family (prefix of cluster.yaml's InstanceType, longest match).")
    node_gpu: dict[str, str] = Field(
        default_factory=dict,
        description="GPU type per cluster node type, over instance_gpus (clusters that name no EC2 InstanceType).")
    gpu: str | None = Field(
        None, description="Without --cluster: the GPU type every GPU stage is held against (None: estimates only).")
    headroom: float = Field(
        0.10, ge=0, lt=1,
        description="A stage fits when its estimate leaves this share of the GPU (vLLM: of its "
        "gpu_memory_utilization share) free: the estimate is arithmetic, not a measurement.")
    framework_overhead_gib: float = Field(
        3.0, ge=0, description="Per training GPU: CUDA context, NCCL buffers, allocator fragmentation (2-4 GB).")
    vllm_overhead_gib: float = Field(
        1.0, ge=0, description="Per vLLM GPU: CUDA graphs and the CUDA context, beside weights, activations, KV.")

    # --- throughput (for a 7.24B model; other sizes scale by 7.24B / parameters)
    train_tokens_per_s: dict[str, float] = Field(
        default_factory=lambda: {"A100-40GB": 1927.0, "A100-80GB": 1927.0, "H100-80GB": 4000.0, "H200-141GB": 4000.0},
        description="Padded training tokens/s per GPU (SFT-equivalent). A100: half of LLM Foundry's measured "
        "3,854 (7B, 8x A100-40GB, FSDP + activation checkpointing, MFU 51%) for HF Trainer + ZeRO-3; "
        "H100: ~2x A100 (assumed).")
    sample_tokens_per_s: dict[str, float] = Field(
        default_factory=lambda: {"L40S-48GB": 3000.0, "A100-40GB": 3400.0, "A100-80GB": 3400.0,
                                 "H100-80GB": 6000.0},
        description="Generated tokens/s of one bare vLLM engine per GPU type, 7B bf16 (third-party figures: "
        "~3.4K on an A100-80GB; L40S assumed 3K, range 2-5K).")
    sampler_efficiency: float = Field(
        0.8, gt=0, le=1, description="Share of a bare engine's throughput a Ray Data stage gets (70-85%: batches "
        "of 256 prompts x n run in waves and idle between batches).")
    reference_params: float = Field(7.24e9, gt=0, description="Parameters the throughputs above are for.")
    stage_startup_s: float = Field(
        300, ge=0, description="Per GPU stage: loading the model, starting engines or the worker group "
        "(a node's cold boot, ~5-10 min, comes on top the first time).")

    # --- prices
    instance_price_per_hour: dict[str, float] = Field(
        default_factory=lambda: dict(INSTANCE_PRICES), description="USD per instance-hour by EC2 InstanceType.")
    node_price_per_hour: dict[str, float] = Field(
        default_factory=dict, description="USD per node-hour per cluster node type, over instance_price_per_hour.")
    teacher_usd_per_m_input: float = Field(
        10.0, ge=0, description="Teacher API, USD per 1M input tokens (GPT-4-Turbo list).")
    teacher_usd_per_m_output: float = Field(
        30.0, ge=0, description="Teacher API, USD per 1M output tokens (GPT-4-Turbo list).")

    # --- data sizes
    seeds: int | None = Field(
        None, ge=1, description="Seed problems (None: gsm8k-train's 7,473, or the rows of a local file).")
    problems: int | None = Field(
        None, ge=1, description="Problems after AgentInstruct (None: seeds x problems_per_seed). The paper: 200,000.")
    problems_per_seed: float = Field(
        5.52, gt=0, description="Problems AgentInstruct keeps per seed (the paper: 200,000 from 36,217 Lila seeds).")
    eval_problems: int | None = Field(None, ge=1, description="Eval set size (None: gsm8k-test's 1,319).")

    # --- tokens
    prompt_tokens: int = Field(120, ge=1, description="Student prompt: a problem and the template (~100 + ~10).")
    solution_tokens: int = Field(230, ge=1, description="A teacher solution (SFT example ~350 tokens in all).")
    sample_tokens: int = Field(250, ge=1, description="A student sample, on average (the cap is decoding.max_tokens).")
    padding_factor: float = Field(1.29, ge=1, description="Padded / real tokens in random batches (~450 / ~350).")
    grouped_padding_factor: float = Field(1.05, ge=1, description="The same with group_by_length.")
    kto_examples_per_problem: float = Field(
        6.5, gt=0, description="KTO rows per practiced problem: n samples, the teacher's positive, borrowed "
        "negatives (~1.3M for 200K problems).")
    dpo_pairs_per_problem: float = Field(4.0, gt=0, description="DPO pairs per practiced problem.")
    rft_examples_per_problem: float = Field(3.0, gt=0, description="RFT positives per practiced problem.")
    kto_compute_factor: float = Field(
        1.75, gt=0, description="KTO compute per example token / SFT's (~14P vs ~8P FLOPs: policy with recompute "
        "and backward, a no-grad pass on the KL completion, two reference forwards).")
    dpo_compute_factor: float = Field(
        2.5, gt=0, description="DPO compute per pair token / SFT's: chosen and rejected, each a policy pass "
        "(~8P) and a reference forward (~2P).")
    judge_input_tokens: int = Field(800, ge=0, description="An LLM-judge call's input (problem, reference, sample).")
    judge_output_tokens: int = Field(200, ge=0, description="An LLM-judge call's output (analysis, verdict).")
    judge_undecided_fraction: float = Field(
        0.05, ge=0, le=1, description="Samples the answer checker reads no answer from, which exact_then_llm sends "
        "to the teacher (assumed, not measured on a 7B).")
    generate_input_tokens: int = Field(600, ge=0, description="An AgentInstruct teacher call's input.")
    generate_output_tokens: int = Field(400, ge=0, description="An AgentInstruct teacher call's output.")

    # --- checkpoints
    checkpoint_bytes_per_param: float = Field(
        14.0, gt=0, description="A save under ZeRO-3 with 16-bit weights gathered: fp32 master + Adam (12) "
        "and the bf16 weights (2): ~101 GB for 7.24B parameters.")
    checkpoint_gb_per_s: float = Field(
        0.5, gt=0, description="The slowest leg of a save (the copy to shared storage: EFS per client).")

    # --- storage
    shared_paths: list[str] = Field(
        default_factory=list, description="Paths the cluster shares across nodes, beside those plan reads from "
        "cluster.yaml (NFS/EFS mounts and the docker volumes that expose them).")
