"""The tiny student: an HF folder with its own tokenizer and the paper's chat format."""

from transformers import AutoModelForCausalLM, AutoTokenizer

from orca_math.cli import main
from orca_math.common.prompts import render_prompt


def test_tiny_model_loads_with_transformers(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.hidden_size // model.config.num_attention_heads == 64
    assert model.config.vocab_size == len(tok)
    ids = tok("Tom has 1234 apples.", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 4


def test_digits_are_single_tokens_and_text_round_trips(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tokens = tok.tokenize("Pay $1,250.75 now")
    for d in "125075":
        assert d in tokens
    assert not any(t.isdigit() and len(t) > 1 for t in tokens)
    assert tok.decode(tok("Pay $1,250.75 now").input_ids) == "Pay $1,250.75 now"


def test_chat_template_is_the_prompt_template(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    chat = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True)
    assert chat == render_prompt("What is 2+2?")


def test_cli_builds_a_model_folder(tmp_path, capsys):
    assert main(["tiny-model", "--out", str(tmp_path / "m"), "--vocab-size", "512"]) == 0
    assert (tmp_path / "m" / "config.json").exists() and (tmp_path / "m" / "tokenizer.json").exists()
    assert len(AutoTokenizer.from_pretrained(tmp_path / "m")) == 512
    assert "tiny model written" in capsys.readouterr().out
