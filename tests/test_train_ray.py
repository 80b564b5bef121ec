"""SFT, DPO and KTO on real Ray Train (local mode, and 2 CPU workers) with the tiny model.

The toy task is learnable in a few steps (``a + b = c``), so "loss goes down" is a real signal.
Each input also carries bad rows that must be quarantined, not fed to TRL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean

import pytest
import yaml

from orca_math.common.config import REPO_ROOT, load_stage_config, load_yaml
from orca_math.common.prompts import render_prompt
from orca_math.common.records import write_parquet
from orca_math.common.schema import KTO_EXAMPLE, PREFERENCE_PAIR, PROBLEM, empty_provenance, stable_id
from orca_math.train import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig, run_preference, run_sft
from orca_math.train.core import CHOSEN_EQUALS_REJECTED, EMPTY_COMPLETION, PROMPT_TOO_LONG

pytestmark = pytest.mark.slow

CONFIG_CLASSES = {"sft": SFTTrainConfig, "dpo": DPOTrainConfig, "kto": KTOTrainConfig}
# The tiny preset with a short, fast schedule for the toy task.
TEST_OVERRIDES = {"max_steps": 10, "per_device_batch_size": 4, "learning_rate": 2e-3, "logging_steps": 1,
                  "save_steps": 1000, "max_length": 96, "max_prompt_length": 48}
SUMS = [(a, b) for a in range(1, 9) for b in range(1, 3)]


def solution(a: int, b: int, wrong: bool = False) -> str:
    c = a * b + 7 if wrong else a + b
    return f"{a} + {b} = {c}\n#### {c}"


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> dict[str, Path]:
    """Problems, preference pairs and KTO examples for ``a + b``, each with bad rows mixed in."""
    d = tmp_path_factory.mktemp("toy")
    problems = [{"id": stable_id(a, b), "question": f"What is {a} + {b}?", "reference_solution": solution(a, b),
                 "reference_answer": str(a + b), "source": "toy", "provenance": empty_provenance()}
                for a, b in SUMS]
    problems.append({**problems[0], "id": "no-solution", "question": "What is 9 + 9?", "reference_solution": None})
    problems.append({**problems[0], "id": "long", "question": "How many apples? " * 30})
    pairs, examples = [], []
    for a, b in SUMS:
        pid, prompt = stable_id(a, b), render_prompt(f"What is {a} + {b}?")
        pairs.append({"pair_id": pid, "problem_id": pid, "prompt": prompt, "chosen": solution(a, b),
                      "rejected": solution(a, b, wrong=True), "chosen_source": "student",
                      "rejected_source": "student", "round": 1})
        for label in (True, False):
            examples.append({"example_id": f"{pid}-{label}", "problem_id": pid, "prompt": prompt,
                             "completion": solution(a, b, wrong=not label), "label": label, "source": "student",
                             "round": 1})
    pairs.append({**pairs[0], "pair_id": "same", "rejected": pairs[0]["chosen"]})
    examples.append({**examples[0], "example_id": "empty", "completion": ""})
    return {
        "sft": write_parquet(problems, PROBLEM, d / "problems" / "part-0.parquet").parent,
        "dpo": write_parquet(pairs, PREFERENCE_PAIR, d / "pairs.parquet"),
        "kto": write_parquet(examples, KTO_EXAMPLE, d / "kto.parquet"),
    }


EXPECTED_QUARANTINE = {"sft": {EMPTY_COMPLETION: 1, PROMPT_TOO_LONG: 1}, "dpo": {CHOSEN_EQUALS_REJECTED: 1},
                       "kto": {EMPTY_COMPLETION: 1}}


# KTO's loss is 1 - sigmoid(beta * margin) per example: at beta 0.1 it barely moves in 10 steps
# (and batches mix both labels, so it is noisy); a larger beta makes the trend clear.
ALGO_OVERRIDES = {"kto": {"beta": 0.5}}


def toy_config(algo: str, placement: int | str, **extra):
    """``placement``: "local" (Ray Train's local mode, in this process) or a number of worker actors."""
    local = placement == "local"
    overrides = {**TEST_OVERRIDES, **ALGO_OVERRIDES.get(algo, {}), "scaling.local_mode": local,
                 "scaling.num_workers": 1 if local else placement, **extra}
    return load_stage_config(CONFIG_CLASSES[algo], "tiny", algo, overrides)


_trained: dict[tuple[str, int], Path] = {}


@pytest.fixture(scope="module")
def train(tiny_model, toy_data, ray_local, tmp_path_factory):
    """Train ``algo`` on ``placement`` once per module; returns the output folder."""

    def _train(algo: str, placement: int | str) -> Path:
        key = (algo, placement)
        if key not in _trained:
            out = tmp_path_factory.mktemp(f"{algo}{placement}")
            cfg = toy_config(algo, placement)
            if algo == "sft":
                run_sft(tiny_model, toy_data["sft"], out, cfg)
            else:
                run_preference(algo, tiny_model, toy_data[algo], out, cfg)
            _trained[key] = out
        return _trained[key]

    return _train


def stage_entry(out: Path, stage: str) -> dict:
    return json.loads((out / "manifest.json").read_text())["stages"][stage]


# One worker actor is trained by the resume test, the pipeline's stopping tests and the multinode test.
@pytest.mark.parametrize("placement", ["local", 2])
@pytest.mark.parametrize("algo", ["sft", "dpo", "kto"])
def test_loss_goes_down_on_a_learnable_toy_set(train, algo, placement):
    out = train(algo, placement)
    entry = stage_entry(out, algo)
    assert entry["status"] == "done"
    assert entry["quarantine_reasons"] == EXPECTED_QUARANTINE[algo]
    assert entry["rows_in"] == entry["rows_out"] + entry["rows_quarantined"]
    m = entry["metrics"]
    assert m["world_size"] == (1 if placement == "local" else placement)
    assert m["ray_train"] == ("local mode (in the calling process)" if placement == "local" else "worker group")
    assert m["global_step"] == 10 and m["steps_this_run"] == 10
    losses = [loss for _, loss in entry["loss_curve"]]
    assert len(losses) == 10
    assert mean(losses[-3:]) < 0.9 * mean(losses[:3]), losses
    if algo == "dpo":
        assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
        assert m["last_rewards_margins"] > 0
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert not (out / "ray_train").exists()  # checkpoints go once the model is safely written


@pytest.mark.parametrize("algo", ["sft", "dpo", "kto"])
def test_output_folder_loads_in_transformers_with_chat_template_and_generates(train, algo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = train(algo, "local")
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    question = "What is 3 + 2?"
    prompt = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt == render_prompt(question)
    ids = tok(prompt, return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]


def test_sft_output_loads_in_vllm_and_matches_transformers_greedy(train):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM, SamplingParams

    out = train("sft", "local")
    prompts = [render_prompt(f"What is {a} + {b}?") for a, b in [(3, 1), (5, 2)]]
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out)
    expected = []
    for p in prompts:
        ids = tok(p, return_tensors="pt")["input_ids"]
        expected.append(model.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:].tolist())
    llm = LLM(model=str(out), dtype="float32", enforce_eager=True, max_model_len=256, seed=0)
    try:
        outs = llm.generate(prompts, SamplingParams(max_tokens=6, temperature=0.0), use_tqdm=False)
        got = [list(o.outputs[0].token_ids) for o in outs]
    finally:
        del llm
    assert all(got), got
    # Same weights: the greedy continuations agree (the first tokens at least; fp32 on both sides).
    assert [g[:3] for g in got] == [e[:3] for e in expected], (got, expected)


def _registered_checkpoint_step(run_dir: Path) -> int:
    """Step of the latest checkpoint Ray Train has registered (what a restart gets), 0 if none.

    A checkpoint folder can exist before the controller registers it; only registered ones are
    restored, so the test waits for the run snapshot rather than for folders.
    """
    snapshot = run_dir / "checkpoint_manager_snapshot.json"
    try:
        latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result") or {}
    except (FileNotFoundError, json.JSONDecodeError):  # not there yet, or being rewritten
        return 0
    return int(latest.get("metrics", {}).get("step", 0))


def _local_checkpoint_step(run_dir: Path) -> int:
    """Step of the newest complete checkpoint the trainer wrote itself (local mode), 0 if none."""
    from orca_math.train.ray_train import _checkpoint_step, _last_hf_checkpoint

    last = _last_hf_checkpoint(run_dir)
    return _checkpoint_step(last) if last else 0


@pytest.mark.parametrize("local_mode", [False, True], ids=["worker", "local"])
def test_resume_after_kill_continues_the_global_step(tiny_model, toy_data, ray_local, tmp_path, local_mode):
    out, max_steps = tmp_path / "sft", 30
    checkpoint_step = _local_checkpoint_step if local_mode else _registered_checkpoint_step
    sft_section = load_yaml(REPO_ROOT / "configs/tiny.yaml")["sft"]
    sft_section.update({k: v for k, v in TEST_OVERRIDES.items() if k != "max_steps"})
    config_file = tmp_path / "train.yaml"
    config_file.write_text(yaml.safe_dump({"sft": {**sft_section, "save_steps": 3,
                                                   "scaling": {"local_mode": local_mode}}}))
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "ray_jobs/sft.py"), "--model", str(tiny_model), "--data",
         str(toy_data["sft"]), "--out", str(out), "--config", str(config_file), "--max-steps", str(max_steps)],
        env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while checkpoint_step(out / "ray_train" / "sft") < 3:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.1)
        assert proc.poll() is None, "training finished before the kill"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = checkpoint_step(out / "ray_train" / "sft")
    assert 3 <= killed_at < max_steps
    assert stage_entry(out, "sft")["status"] == "running"  # the killed run never finished

    cfg = load_stage_config(SFTTrainConfig, config_file, "sft", {"max_steps": max_steps})
    run_sft(tiny_model, toy_data["sft"], out, cfg)  # interrupted: resumes
    entry = stage_entry(out, "sft")
    m = entry["metrics"]
    assert entry["status"] == "done"
    # The dying controller may register one more checkpoint right after the kill.
    assert killed_at <= m["resumed_from_step"] < max_steps
    assert m["global_step"] == max_steps
    assert m["steps_this_run"] == max_steps - m["resumed_from_step"]
    # One loss per step, before and after the crash: the curve carries on from the checkpoint.
    assert [step for step, _ in entry["loss_curve"]] == list(range(1, max_steps + 1))
