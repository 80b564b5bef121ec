"""The preferences config (``prefs:``): how a round's DPO pairs and KTO examples are built."""

from __future__ import annotations

from pydantic import Field

from orca_math.common.config import StageConfig
from orca_math.common.prompts import DEFAULT_PROMPT_TEMPLATE


class PreferenceConfig(StageConfig):
    """How pairs and examples are built. Defaults follow the paper."""

    # The rows do not depend on how the round is split among workers.
    execution_fields = frozenset({"samples_per_partition", "problems_per_part"})

    prompt_template: str = Field(DEFAULT_PROMPT_TEMPLATE, description="Student prompt format (as in SFT).")
    teacher_positive: bool = Field(True, description="The teacher's solution always counts as a positive.")
    borrow_negatives: int = Field(4, ge=0, description="Negatives borrowed (one per other problem) when a problem has none.")
    max_pairs_per_problem: int | None = Field(None, ge=1, description="Cap on DPO pairs per problem (None: all).")
    max_positives_per_problem: int | None = Field(None, ge=1, description="Cap on positives kept per problem (None: all).")
    skip_mastered: bool = Field(
        False, description="Leave out problems whose every sample is right (no pairs, no examples), so a round "
        "trains only on problems the student still gets wrong. Off in the paper, which borrows negatives for them.",
    )
    check_calculations: bool = Field(
        False, description="A right answer whose written calculations do not all hold (\"21 / 2 = 7 ... #### 7\", "
        "judge/calculations.py) counts as a negative, not a positive, and the report counts it as lucky. Off in "
        "the paper, which trusts the final answer.",
    )
    donor_pool: int = Field(
        4096, ge=1, description="Most problems whose negatives can be borrowed: those first in a hash of "
        "(seed, round, problem id), so the pool is bounded and does not depend on the order of the rows.",
    )
    seed: int = Field(0, description="Seed for borrowing and capping (each problem draws from its own generator).")
    samples_per_partition: int = Field(
        50_000, ge=1, description="Samples per group-by partition: one worker holds one partition's problems.",
    )
    problems_per_part: int = Field(
        2048, ge=1, description="Problems per written part: bounds a worker's output rows in memory, and what "
        "a killed stage recomputes.",
    )

    @property
    def borrows(self) -> bool:
        """Whether any problem can borrow negatives: the problems that would (no wrong sample) are
        left out when ``skip_mastered`` is on."""
        return bool(self.borrow_negatives) and not self.skip_mastered
