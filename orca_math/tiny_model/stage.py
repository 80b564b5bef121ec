"""The recipe's ``student`` stage: the tiny Llama M0 built into the run folder."""

from __future__ import annotations

from pathlib import Path

from orca_math.common.runner import Stage
from orca_math.tiny_model.config import TinyModelConfig
from orca_math.tiny_model.core import build_tiny_model


def student_stage(cfg: TinyModelConfig, out_dir: str | Path, *, name: str = "student") -> Stage:
    """Build the tiny student described by ``cfg`` into ``out_dir`` (an HF model folder)."""

    def build(c) -> None:
        build_tiny_model(c.out, cfg)

    return Stage(name, cfg, build, out=Path(out_dir))
