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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import mean

import pytest
import yaml

from orca_math.common.capacity import ClusterTooSmallError, StartTimeoutError
from orca_math.common.config import REPO_ROOT, load_stage_config, load_yaml
from orca_math.common.prompts import render_prompt
from orca_math.common.records import write_parquet
from orca_math.common.schema import KTO_EXAMPLE, PREFERENCE_PAIR, PROBLEM, empty_provenance, stable_id
from orca_math.train import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig, run_preference, run_sft
from orca_math.train.core import CHOSEN_EQUALS_REJECTED, EMPTY_COMPLETION, PROMPT_TOO_LONG
from orca_math.train.ray_train import SCRATCH_FOLDER

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


# One worker actor is trained by the pipeline's stopping tests and the multinode test.
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


class ScratchWatch:
    """What the workers' scratch folders held, looked at as often as the test can while training runs."""

    def __init__(self, root: Path, left_before: set[tuple[str, str]] = frozenset()):
        # left_before: (rank, checkpoint) an earlier, killed run left, there until the rerun wipes them.
        self.root, self.left_before, self.most, self.ranks = root, left_before, 0, set()

    def held(self) -> set[tuple[str, str]]:
        """(rank folder, checkpoint folder) for every checkpoint in the scratch now."""
        found = set()
        for rank in self.root.glob(f"{SCRATCH_FOLDER}/*/rank*"):
            try:
                found |= {(rank.name, p.name) for p in rank.iterdir() if p.name.startswith("checkpoint-")}
            except FileNotFoundError:  # wiped or removed between the glob and the listing
                continue
            self.ranks.add(rank.name)
        return found

    def look(self) -> None:
        per_rank = Counter(rank for rank, _ in self.held() - self.left_before)
        self.most = max(self.most, *per_rank.values(), 0)


def _watch_until(done, watch: ScratchWatch, what: str, timeout_s: float = 240) -> None:
    deadline = time.time() + timeout_s
    while not done():
        watch.look()
        assert time.time() < deadline, f"{what} not within {timeout_s} s"
        time.sleep(0.02)


# Two workers (gloo) where they are Ray Train actors: every rank writes its part of each checkpoint,
# and each must delete its own (only rank 0 rotates the trainer's checkpoints).
@pytest.mark.parametrize("placement", [2, "local"], ids=["2workers", "local"])
def test_resume_after_kill_continues_the_global_step(tiny_model, toy_data, ray_local, tmp_path, monkeypatch,
                                                     placement):
    # Ray Train's controller takes one report per worker per poll (every 2 s by default) and a save is
    # two reports (the wait for the one before, then its own): a save every 3 steps of a tiny model
    # would wait on the poll, not on training.
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")
    local_mode, out, max_steps, scratch = placement == "local", tmp_path / "sft", 30, tmp_path / "scratch"
    checkpoint_step = _local_checkpoint_step if local_mode else _registered_checkpoint_step
    saves_before_kill = 1 if local_mode else 3  # workers: several saves, each through the scratch folder
    sft_section = load_yaml(REPO_ROOT / "configs/tiny.yaml")["sft"]
    sft_section.update({k: v for k, v in TEST_OVERRIDES.items() if k != "max_steps"})
    scaling = {"local_mode": True} if local_mode else {"local_mode": False, "num_workers": placement}
    config_file = tmp_path / "train.yaml"
    config_file.write_text(yaml.safe_dump({"sft": {**sft_section, "save_steps": 3, "scratch_dir": str(scratch),
                                                   "scaling": scaling}}))
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "ray_jobs/sft.py"), "--model", str(tiny_model), "--data",
         str(toy_data["sft"]), "--out", str(out), "--config", str(config_file), "--max-steps", str(max_steps)],
        env=env, cwd=REPO_ROOT, stdout=(log := open(tmp_path / "job.log", "wb")), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()  # the child has its own copy
    watch = ScratchWatch(scratch)  # the first run's
    try:
        def saved_or_ended() -> bool:
            assert proc.poll() is None, ("training ended before it could be killed:\n"
                                         + (tmp_path / "job.log").read_text(errors="replace")[-3000:])
            return checkpoint_step(out / "ray_train" / "sft") >= 3 * saves_before_kill

        _watch_until(saved_or_ended, watch, f"{saves_before_kill} checkpoint(s)")
        assert proc.poll() is None, "training finished before the kill"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = checkpoint_step(out / "ray_train" / "sft")
    assert 3 * saves_before_kill <= killed_at < max_steps
    assert stage_entry(out, "sft")["status"] == "running"  # the killed run never finished
    resumed_watch = ScratchWatch(scratch, left_before=watch.held())
    if not local_mode:
        # Stored under its step, every rank's part merged into one checkpoint.
        stored = out / "ray_train" / "sft" / f"checkpoint-{killed_at}"
        assert {p.name for p in stored.glob("rng_state_*.pth")} == {f"rng_state_{r}.pth" for r in range(placement)}
        # What a worker killed in the middle of a save leaves, on a node the rerun trains on again.
        (stage,) = scratch.glob(f"{SCRATCH_FOLDER}/sft-*")
        (stage / "rank1" / "checkpoint-999").mkdir(parents=True, exist_ok=True)
        (stage / "rank1" / "checkpoint-999" / "optimizer.pt").write_bytes(b"\0" * 1024)
        resumed_watch.left_before.add(("rank1", "checkpoint-999"))

    cfg = load_stage_config(SFTTrainConfig, config_file, "sft", {"max_steps": max_steps})
    with ThreadPoolExecutor(1) as pool:  # interrupted: resumes, while this thread watches the scratch
        resumed = pool.submit(run_sft, tiny_model, toy_data["sft"], out, cfg)
        _watch_until(resumed.done, resumed_watch, "the resumed run")
        resumed.result()
    entry = stage_entry(out, "sft")
    m = entry["metrics"]
    assert entry["status"] == "done"
    # The dying controller may register one more checkpoint right after the kill.
    assert killed_at <= m["resumed_from_step"] < max_steps
    assert m["global_step"] == max_steps
    assert m["steps_this_run"] == max_steps - m["resumed_from_step"]
    # One loss per step, before and after the crash: the curve carries on from the checkpoint.
    assert [step for step, _ in entry["loss_curve"]] == list(range(1, max_steps + 1))
    if not local_mode:
        for w in (watch, resumed_watch):
            assert w.ranks == {f"rank{r}" for r in range(placement)}  # the workers wrote where they were told
            assert w.most <= 1  # never a second checkpoint beside one not yet stored
        assert list((scratch / SCRATCH_FOLDER).iterdir()) == []  # no orphans: the stage's scratch is gone


def test_a_larger_max_steps_continues_from_the_last_checkpoint(tiny_model, toy_data, ray_local, tmp_path):
    out = tmp_path / "sft"
    cfg = toy_config("sft", "local", max_steps=3, save_steps=3, keep_checkpoints=True)
    run_sft(tiny_model, toy_data["sft"], out, cfg)
    assert stage_entry(out, "sft")["metrics"]["global_step"] == 3
    run_sft(tiny_model, toy_data["sft"], out, cfg.model_copy(update={"max_steps": 5}))
    entry = stage_entry(out, "sft")
    m = entry["metrics"]
    assert entry["status"] == "done" and entry["config"]["max_steps"] == 5
    assert (m["resumed_from_step"], m["global_step"], m["steps_this_run"]) == (3, 5, 2)
    assert [step for step, _ in entry["loss_curve"]] == [1, 2, 3, 4, 5]  # the curve carries on


def test_workers_asking_for_a_resource_no_node_has_fail_in_seconds_naming_it(tiny_model, toy_data, ray_local,
                                                                              tmp_path):
    cfg = toy_config("sft", 2, **{"scaling.resources_per_worker": {"CPU": 1, "trainer": 1}})
    started = time.perf_counter()
    with pytest.raises(ClusterTooSmallError) as e:
        run_sft(tiny_model, toy_data["sft"], tmp_path / "sft", cfg)
    assert time.perf_counter() - started < 15
    line = str(e.value)
    assert "\n" not in line and "{CPU: 1, trainer: 1}" in line and "scaling.resources_per_worker" in line, line


def test_workers_whose_resources_never_come_free_fail_after_the_start_timeout_naming_them(tiny_model, toy_data,
                                                                                         ray_local, tmp_path):
    from ray.util.placement_group import placement_group, remove_placement_group

    # Another stage holds one of the two CPUs: the cluster could host both workers, but not now.
    holder = placement_group([{"CPU": 1}])
    ray_local.get(holder.ready(), timeout=60)
    cfg = toy_config("sft", 2, **{"scaling.resources_per_worker": {"CPU": 1}, "scaling.start_timeout_s": 3})
    started = time.perf_counter()
    try:
        with pytest.raises(StartTimeoutError) as e:
            run_sft(tiny_model, toy_data["sft"], tmp_path / "sft", cfg)
    finally:
        remove_placement_group(holder)
    assert time.perf_counter() - started < 60  # Ray Train's own default would retry every 60 s, forever
    line = str(e.value)
    assert "\n" not in line and line.startswith("training workers need {CPU: 1} x 2; none came within 3 s"), line
    assert "scaling.start_timeout_s" in line
