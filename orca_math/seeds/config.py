"""The seeds stage's config, and the dedup and decontamination settings (``dedup.py``) that generate uses."""

from __future__ import annotations

from pydantic import Field

from orca_math.common.config import StageConfig


class SeedsConfig(StageConfig):
    """What the seeds stage reads: only these parts of ``run:`` (so changing, say, ``rounds`` or
    ``practice_limit`` does not redo the seeds and, through the chain, SFT)."""

    seeds: str = Field(..., description="Seed problems (or the SFT set when generate is off).")
    seed_limit: int | None = Field(None, description="Use only the first N seeds.")
    problems: str | None = Field(None, description="A problem set used as it is, instead of the seeds.")


class DedupConfig(StageConfig):
    """Exact and near-duplicate removal within a problem set."""

    near_duplicates: bool = Field(True, description="Also remove near duplicates (else exact only).")
    threshold: float = Field(0.8, gt=0, le=1, description="Word-shingle Jaccard at or above which two questions are near duplicates.")
    shingle_words: int = Field(3, ge=1, description="Words per shingle.")
    num_perm: int = Field(128, ge=16, description="MinHash permutations (more: fewer missed pairs, slower).")
    same_numbers: bool = Field(True, description="Near duplicates must also state the same numbers.")
    seed: int = Field(1, description="MinHash seed (fixed: runs are reproducible).")


class DecontamConfig(StageConfig):
    """Removal of problems that (nearly) repeat an eval question."""

    eval_sets: list[str] = Field(
        default_factory=lambda: ["gsm8k-test"],
        description="Eval sets to decontaminate against: gsm8k-test, a JSONL/Parquet path, or hf:ID[:CONFIG]:SPLIT.",
    )
    tfidf_neighbors: int = Field(5, ge=1, description="Nearest eval questions (TF-IDF cosine) checked per problem.")
    unigram_jaccard: float = Field(0.5, gt=0, le=1, description="Unigram Jaccard at or above which a problem is contaminated (paper: 0.5).")
    ngram_words: int | None = Field(13, ge=5, description="Flag any shared run of this many words with an eval question; None to skip.")
