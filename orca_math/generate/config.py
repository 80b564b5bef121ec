"""Configs of the AgentInstruct stages: ``generate:`` (three flows + dedup) and ``solve:``.

Defaults reproduce the Orca-Math recipe: GPT-4-Turbo as teacher, Ask Me Anything on every
seed, two Suggester+Editor rounds, every problem solved by the teacher with a 1,800-character
cap, seeds kept in the output, decontamination against GSM8K test.
"""

from __future__ import annotations

from pydantic import Field

from orca_math.common.config import StageConfig
from orca_math.seeds.config import DecontamConfig, DedupConfig
from orca_math.teacher.config import AnyTeacherConfig, TeacherConfig


class AskMeAnythingConfig(StageConfig):
    """Flow 1: seed + answer -> a statement -> one new question per number in it."""

    enabled: bool = Field(True, description="Run this flow on every seed.")


class SuggesterEditorConfig(StageConfig):
    """Flow 2: a Suggester proposes ways to make a problem harder, an Editor rewrites it."""

    enabled: bool = Field(True, description="Run this flow on every seed.")
    rounds: int = Field(2, ge=1, description="Rounds, each on the previous round's problem (paper: 2).")
    keep_all_rounds: bool = Field(
        False, description="Keep every round's problem as a candidate (paper: only the last round's)."
    )


class SolveConfig(StageConfig):
    """Flow 3: the teacher's step-by-step solution, kept only if it checks out."""

    max_solution_chars: int = Field(1800, ge=1, description="Longer solutions are rejected (paper: 1,800).")
    verify: bool = Field(True, description="Require a second, independent solve that reaches the same answer.")
    verify_temperature: float | None = Field(
        None, ge=0, description="Temperature of the second solve (None: the teacher's temperature)."
    )
    check_expected_answer: bool = Field(
        True,
        description="When a problem comes with an answer (a seed's gold, or the number an Ask Me Anything "
        "question was written to ask for), the solution must reach it.",
    )


class ExecutionConfig(StageConfig):
    """How the work is spread over Ray Data; changes nothing in the output."""

    seeds_per_part: int = Field(16, ge=1, description="Seeds per committed output part (the unit of resume).")
    workers: int = Field(1, ge=1, description="Ray Data actors, each with its own teacher connection pool.")
    parts_in_flight_per_worker: int = Field(4, ge=1, description="Seed batches one worker runs at once.")
    num_cpus_per_worker: float = Field(0.5, gt=0, description="CPUs reserved per worker (mostly waits on HTTP).")


class GenerateConfig(StageConfig):
    """``orca-math generate``: seeds -> new problems with teacher solutions, deduplicated."""

    execution_fields = frozenset({"execution"})
    resumable_fields = frozenset({"limit"})  # parts are per seed: more seeds ask the teacher for the new ones only

    seeds: str = Field("gsm8k-train", description="gsm8k-train, a JSONL/Parquet path, or hf:ID[:CONFIG]:SPLIT.")
    limit: int | None = Field(None, ge=1, description="Use only the first N seeds.")
    include_seeds: bool = Field(
        True, description="Keep the seeds themselves in the output (paper: the 200K set contains them); "
        "a seed without a solution gets the teacher's, kept only if it matches the gold answer.",
    )
    teacher: AnyTeacherConfig = Field(
        default_factory=TeacherConfig,
        description="The teacher endpoint (`kind: endpoint`, the default), or `kind: procedural` for the symbolic "
        "world teacher (orca_math/world/).",
    )
    ask_me_anything: AskMeAnythingConfig = Field(default_factory=AskMeAnythingConfig)
    suggester_editor: SuggesterEditorConfig = Field(default_factory=SuggesterEditorConfig)
    solve: SolveConfig = Field(default_factory=SolveConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)


class SolveStageConfig(StageConfig):
    """``orca-math solve``: teacher solutions for an existing problem set.

    Default: keep a problem only where the teacher reaches its reference answer (the DMath-style
    filter of the paper); set ``solve.check_expected_answer: false`` and ``solve.verify: true`` to
    rely on two agreeing solves instead.
    """

    execution_fields = frozenset({"execution"})
    resumable_fields = frozenset({"limit"})  # parts are per problem: more problems solve the new ones only

    data: str = Field("gsm8k-train", description="Problems to solve: gsm8k-*, a JSONL/Parquet path, or hf:ID.")
    limit: int | None = Field(None, ge=1, description="Solve only the first N problems.")
    teacher: AnyTeacherConfig = Field(
        default_factory=TeacherConfig,
        description="The teacher endpoint (`kind: endpoint`, the default), or `kind: procedural` for the symbolic "
        "world teacher (orca_math/world/).",
    )
    solve: SolveConfig = Field(default_factory=lambda: SolveConfig(verify=False))
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
