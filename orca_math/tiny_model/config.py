"""The tiny Llama's shape."""

from __future__ import annotations

from pydantic import Field, model_validator

from orca_math.common.config import StageConfig


class TinyModelConfig(StageConfig):
    """Shape of the tiny Llama. vLLM's CPU attention needs head_dim in {32, 64, 128, ...}."""

    hidden_size: int = Field(128, description="Model width.")
    num_layers: int = Field(2, description="Transformer blocks.")
    num_heads: int = Field(2, description="Attention heads; hidden_size / num_heads is the head dim.")
    intermediate_size: int = Field(256, description="MLP width.")
    vocab_size: int = Field(2048, description="BPE vocabulary size to train (digits are always single tokens).")
    max_position_embeddings: int = Field(2048, description="Longest sequence the model accepts.")
    corpus: str | None = Field(None, description="Text/JSONL file to train the tokenizer on; default GSM8K train or built-in text.")
    seed: int = Field(0, description="Seed for weights and corpus sampling.")

    @model_validator(mode="after")
    def _head_dim_fits_vllm_cpu(self) -> "TinyModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        if self.hidden_size // self.num_heads not in (32, 64, 80, 96, 112, 128, 256):
            raise ValueError(f"head dim {self.hidden_size // self.num_heads} is not supported by vLLM CPU attention")
        return self
