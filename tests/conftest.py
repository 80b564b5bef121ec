"""Session fixtures: one tiny model, one local Ray, shared by every test that needs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

GSM8K_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    if not (GSM8K_DIR / "test.jsonl").exists():
        pytest.skip(f"GSM8K not found at {GSM8K_DIR}")
    return GSM8K_DIR


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Llama (hidden 128, 2 heads -> head_dim 64) saved as an HF folder."""
    from orca_math.tiny_model.core import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the whole session (2 CPUs, like this machine)."""
    import ray

    # address="local": a fresh instance, never a cluster someone started with `ray start` here.
    ray.init(address="local", num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()
