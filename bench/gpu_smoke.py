"""A device check for a lent GPU: SFT, DPO and KTO on a random Llama, killed after a checkpoint and
resumed, with tokens/s and peak memory beside what `orca-math plan`'s memory model predicts.

No Ray, no vLLM: the GPU machines have torch and transformers; TRL and the libraries it needs that
are missing there (accelerate, datasets and theirs) come as a folder of wheels (``--wheels DIR``),
installed without an index into ``DIR/site``; fill it with ``pip download`` on a machine with an
index, for the GPU machine's Python and platform. Per algorithm, two processes: the first trains and
kills itself (SIGKILL) right after its checkpoint at step ``steps/2``; the second resumes from that
checkpoint and runs to ``steps``.

The report: the step the second resumed from and the one it ended at, its padded tokens/s (policy
sequences x length, from the end of its first step); the peak memory of the first's training before
its checkpoint, and that peak above what the trainer held before its first step (the weights, the
reference model, the data), each beside the memory model's same number (without its framework
overhead); and the resumed run's peak (which adds loading the checkpoint). CUDA: the allocator's
``max_memory_allocated``, which leaves out the CUDA context; CPU: RSS above the RSS after the imports.

    python bench/gpu_smoke.py                  # one GPU: ~440M-parameter Llama, bf16, batch 8 x 1024
    .venv/bin/python bench/gpu_smoke.py --tiny # CPU: ~22M parameters, fp32, batch 4 x 128

Every row must say resumed_from = steps/2 and global_step = steps; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # orca_math.plan.memory: pure Python, no dependency beyond the stdlib

# (hidden, layers, heads, kv_heads, intermediate, vocab, batch, length)
SHAPES = {
    "gpu": dict(hidden=1024, layers=24, heads=16, kv_heads=8, intermediate=4096, vocab=32000, batch=8, length=1024),
    "tiny": dict(hidden=512, layers=4, heads=8, kv_heads=8, intermediate=1536, vocab=8192, batch=4, length=128),
}
ALGOS = ("sft", "dpo", "kto")


def add_wheels(folder: str | None) -> None:
    """Make the wheels in ``folder`` importable: installed once (no index, no dependency resolution:
    the folder must hold every missing package, binary ones included) into ``folder/site``."""
    if not folder:
        return
    site = Path(folder) / "site"
    if not site.is_dir():
        wheels = sorted(str(w) for w in Path(folder).glob("*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--target", str(site),
                        *wheels], check=True)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))


def rss_bytes() -> int:
    """This process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_model(folder: Path, shape: dict, seed: int = 0) -> None:
    """A randomly initialised Llama and a byte-level BPE trained on a few sentences, as an HF folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [f"Tom has {a} apples and buys {a % 7 + 2} more. The answer is {a + a % 7 + 2}." for a in range(2000)]
    bpe = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, bpe)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    cfg = LlamaConfig(vocab_size=shape["vocab"], hidden_size=shape["hidden"], intermediate_size=shape["intermediate"],
                      num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                      num_key_value_heads=shape["kv_heads"], max_position_embeddings=2 * shape["length"],
                      bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)


def rows(algo: str, n: int, length: int) -> dict[str, list]:
    """Rows whose prompt (a quarter of ``length``) + completion fill ``length`` tokens or more (cut to it):
    every batch is the worst one, as the memory model assumes. The words are single tokens of the BPE."""
    prompt = ["USER:\n" + " apples" * (length // 4) + "\n\nASSISTANT:\n"] * n
    good, bad = " more" * length, " answer" * length
    if algo == "sft":
        return {"prompt": prompt, "completion": [good] * n}
    if algo == "dpo":
        return {"prompt": prompt, "chosen": [good] * n, "rejected": [bad] * n}
    return {"prompt": prompt, "completion": [good if i % 2 else bad for i in range(n)],
            "label": [bool(i % 2) for i in range(n)]}


def predicted(algo: str, shape: dict, on_gpu: bool) -> tuple[float, float]:
    """The plan's memory model for this run, without its framework overhead (in neither measurement):
    (all of it, the part training adds to the loaded weights and reference model)."""
    from orca_math.plan.memory import ModelShape, training_memory

    model = ModelShape(shape["hidden"], shape["layers"], shape["intermediate"], shape["heads"], shape["kv_heads"],
                       shape["vocab"])
    cfg = SimpleNamespace(scaling=SimpleNamespace(num_workers=1), deepspeed=None, fsdp=None, bf16=on_gpu, fp16=False,
                          model_dtype="float32", per_device_batch_size=shape["batch"], max_length=shape["length"],
                          gradient_checkpointing=True, attn_implementation=None, precompute_ref_log_probs=False,
                          fused_lm_head=True)
    est = training_memory(algo, cfg, model, on_gpu, overhead_gib=0.0)
    return est.total, est.total - est.parts["weights"] - est.parts.get("reference model", 0.0)


def plain_steps(shape: dict, on_gpu: bool, checkpointing: bool) -> tuple[float, float]:
    """Three plain torch training steps (AdamW, the model's own loss over full logits) of the same Llama:
    (measured peak above the built model, the memory model's gradients + Adam + activations + logits)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from orca_math.plan.memory import ModelShape, training_memory

    def build(**kw):
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **kw)).to("cuda" if on_gpu else "cpu")
        model.train()
        return model, torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(model, opt, ids):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    device = "cuda" if on_gpu else "cpu"
    # a throwaway step first: the math libraries' code and buffers belong in the baseline
    warm, warm_opt = build(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2)
    step(warm, warm_opt, torch.randint(0, 512, (2, 16), device=device))
    del warm, warm_opt
    model, opt = build(vocab_size=shape["vocab"], hidden_size=shape["hidden"], intermediate_size=shape["intermediate"],
                       num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                       num_key_value_heads=shape["kv_heads"])
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids = torch.randint(0, shape["vocab"], (shape["batch"], shape["length"]), device=device)
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
    for _ in range(3):
        step(model, opt, ids)
    measured = (torch.cuda.max_memory_allocated() if on_gpu
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base
    cfg = SimpleNamespace(scaling=SimpleNamespace(num_workers=1), deepspeed=None, fsdp=None, bf16=on_gpu, fp16=False,
                          model_dtype="float32", per_device_batch_size=shape["batch"], max_length=shape["length"],
                          gradient_checkpointing=checkpointing, attn_implementation=None, fused_lm_head=False)
    est = training_memory("sft", cfg, ModelShape(shape["hidden"], shape["layers"], shape["intermediate"],
                                                 shape["heads"], shape["kv_heads"], shape["vocab"]), on_gpu, 0.0)
    return measured, est.total - est.parts["weights"]


def worker(args: argparse.Namespace) -> int:
    """One training process: ``first`` kills itself after the mid-run checkpoint, ``resume`` finishes."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, SFTConfig, SFTTrainer

    shape, algo, out = SHAPES["tiny" if args.tiny else "gpu"], args.worker, Path(args.dir) / args.worker
    on_gpu = torch.cuda.is_available() and not args.tiny
    out.mkdir(parents=True, exist_ok=True)
    baseline = rss_bytes()
    half = args.steps // 2
    timing: dict[str, float] = {}

    def peak() -> int:
        if on_gpu:
            return torch.cuda.max_memory_allocated()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline

    def now() -> int:
        return torch.cuda.memory_allocated() if on_gpu else rss_bytes() - baseline

    class Probe(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):
            if args.phase == "first" and state.global_step == half:  # before the save: training's own peak
                (out / "first_peak.json").write_text(json.dumps({"peak_bytes": peak(), "static_bytes": static}))
            timing.setdefault("first_step", state.global_step)
            if state.global_step == timing["first_step"]:  # time from the end of the first step (warm)
                if on_gpu:
                    torch.cuda.synchronize()
                timing["t0"] = time.perf_counter()
            timing["last_step"] = state.global_step

        def on_save(self, targs, state, control, **kw):
            if args.phase == "first" and state.global_step == half:
                os.kill(os.getpid(), signal.SIGKILL)  # a crash right after the checkpoint

    common = dict(output_dir=str(out), max_steps=args.steps, save_steps=half, save_strategy="steps",
                  per_device_train_batch_size=shape["batch"], gradient_accumulation_steps=1, learning_rate=1e-5,
                  lr_scheduler_type="constant", bf16=on_gpu, use_cpu=not on_gpu, gradient_checkpointing=True,
                  logging_steps=1, report_to="none", disable_tqdm=True, seed=0, max_length=shape["length"],
                  dataloader_num_workers=0, save_total_limit=1)
    config = {"sft": SFTConfig(**common, completion_only_loss=True),
              "dpo": DPOConfig(**common, beta=0.1),
              "kto": KTOConfig(**common, beta=0.1)}[algo]
    trainer_cls = {"sft": SFTTrainer, "dpo": DPOTrainer, "kto": KTOTrainer}[algo]
    data = Dataset.from_dict(rows(algo, shape["batch"] * args.steps, shape["length"]))
    model = str(Path(args.dir) / "model")
    trainer = trainer_cls(model=model, args=config, train_dataset=data,
                          processing_class=AutoTokenizer.from_pretrained(model), callbacks=[Probe()])
    if on_gpu:
        trainer.model.to("cuda")  # what Trainer does at train(): the weights count as loaded, not trained
        torch.cuda.reset_peak_memory_stats()
    static = now()  # weights, reference model, data: what the trainer holds before its first step
    trainer.train(resume_from_checkpoint=args.phase == "resume")
    if on_gpu:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - timing["t0"]
    steps_timed = timing["last_step"] - timing["first_step"]
    seqs = shape["batch"] * (2 if algo == "dpo" else 1)
    first = json.loads((out / "first_peak.json").read_text())
    total, added = predicted(algo, shape, on_gpu)
    result = {"algo": algo, "resumed_from": timing["first_step"] - 1, "global_step": trainer.state.global_step,
              "tokens_per_s": steps_timed * seqs * shape["length"] / elapsed if steps_timed else 0.0,
              "peak_bytes": first["peak_bytes"], "static_bytes": first["static_bytes"],
              "resumed_peak_bytes": peak(), "reserved_bytes": torch.cuda.max_memory_reserved() if on_gpu else None,
              "predicted_bytes": total, "predicted_added_bytes": added,
              "device": torch.cuda.get_device_name(0) if on_gpu else "CPU",
              "loss": trainer.state.log_history[-2].get("loss")}
    (out / "result.json").write_text(json.dumps(result))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="small model in fp32 on CPU (checks the script anywhere)")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per algorithm (checkpoint at half)")
    p.add_argument("--dir", default=None, help="work folder (default: a temp folder, deleted)")
    p.add_argument("--wheels", default=None, help="folder of wheels (trl, accelerate, datasets...) to import from")
    p.add_argument("--algos", default=",".join(ALGOS), help="comma-separated subset of sft,dpo,kto")
    p.add_argument("--plain", choices=("gc", "nogc"), help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=ALGOS, help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=("first", "resume"), help=argparse.SUPPRESS)
    args = p.parse_args()
    add_wheels(args.wheels)
    if args.worker:
        return worker(args)
    shape = SHAPES["tiny" if args.tiny else "gpu"]
    if args.plain:
        import torch

        measured, model = plain_steps(shape, torch.cuda.is_available() and not args.tiny, args.plain == "gc")
        print(json.dumps({"measured": measured, "model": model}))
        return 0

    with tempfile.TemporaryDirectory(prefix="gpu_smoke-") as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build_model(folder / "model", shape)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        results, failures = [], []
        for algo in args.algos.split(","):
            base = [sys.executable, __file__, "--dir", str(folder), "--steps", str(args.steps), "--worker", algo]
            base += ["--tiny"] if args.tiny else []
            base += ["--wheels", args.wheels] if args.wheels else []
            first = subprocess.run(base + ["--phase", "first"], env=env)
            ckpt = folder / algo / f"checkpoint-{args.steps // 2}"
            if first.returncode != -signal.SIGKILL or not ckpt.is_dir():
                failures.append(f"{algo}: the first run ended {first.returncode} (expected SIGKILL) with "
                                f"{'a' if ckpt.is_dir() else 'no'} {ckpt.name}")
                continue
            resumed = subprocess.run(base + ["--phase", "resume"], env=env)
            if resumed.returncode != 0:
                failures.append(f"{algo}: the resumed run failed ({resumed.returncode})")
                continue
            r = json.loads((folder / algo / "result.json").read_text())
            if r["resumed_from"] != args.steps // 2 or r["global_step"] != args.steps:
                failures.append(f"{algo}: resumed from step {r['resumed_from']}, ended at {r['global_step']}")
            results.append(r)

        mib = 2**20
        # peak: the training's (first run, before its checkpoint); added: the peak above what the trainer
        # held before its first step (weights, reference, data), beside the model's same two numbers
        print(f"\n{'algo':<5} {'resumed':>7} {'steps':>5} {'tokens/s':>9} {'peak MiB':>9} {'model':>6} {'ratio':>5} "
              f"{'added MiB':>9} {'model':>6} {'ratio':>5} {'resumed peak':>12}  device")
        for r in results:
            added = r["peak_bytes"] - r["static_bytes"]
            print(f"{r['algo']:<5} {r['resumed_from']:>7} {r['global_step']:>5} {r['tokens_per_s']:>9,.0f} "
                  f"{r['peak_bytes'] / mib:>9,.0f} {r['predicted_bytes'] / mib:>6,.0f} "
                  f"{r['peak_bytes'] / r['predicted_bytes']:>5.2f} {added / mib:>9,.0f} "
                  f"{r['predicted_added_bytes'] / mib:>6,.0f} {added / r['predicted_added_bytes']:>5.2f} "
                  f"{r['resumed_peak_bytes'] / mib:>12,.0f}  {r['device']}")
        # each in a fresh process: a peak counter cannot be reset on CPU
        for mode in ("gc", "nogc"):
            cmd = [sys.executable, __file__, "--plain", mode] + (["--tiny"] if args.tiny else [])
            line = subprocess.run(cmd, env=env, capture_output=True, text=True).stdout.strip().splitlines()
            if line:
                m = json.loads(line[-1])
                print(f"plain torch steps, checkpointing {'on' if mode == 'gc' else 'off'}: peak above the built model "
                      f"{m['measured'] / mib:,.0f} MiB, model {m['model'] / mib:,.0f} MiB "
                      f"({m['measured'] / m['model']:.2f}x)")
        print(f"wall {time.perf_counter() - started:.0f} s")
        for line in failures:
            print(f"FAILED {line}", file=sys.stderr)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
