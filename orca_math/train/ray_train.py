"""The thin Ray Train shell around a TRL trainer: ``train_loop_per_worker`` + ``TorchTrainer``.

Every worker builds its own dataset and trainer (TRL tokenizes at construction), wraps it with
``prepare_trainer`` and reports each HF checkpoint to Ray Train with ``RayTrainReportCallback``.
Ray Train keeps checkpoints under ``OUT/ray_train/<name>``; rerunning with the same name makes
``ray.train.get_checkpoint()`` return the latest one, and the HF trainer resumes from it (global
step, optimizer, scheduler, RNG and data position). Without ``resume`` that folder is cleared first.

With ``scaling.local_mode`` (one worker) the same loop runs in the calling process (Ray Train's local mode,
``num_workers=0``), the trainer writes its checkpoints straight into ``OUT/ray_train/<name>`` and a
resume starts from its newest complete one.

``OUT`` must be visible to every worker (one machine, or shared storage such as NFS on a
cluster), like any Ray Train ``storage_path``: rank 0 writes the final model there.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from orca_math.common.hardware import check_feasible, cluster_capacity, resolve_use_gpu, this_machine
from orca_math.train.config import CONFIG_CLASSES, TrainConfigBase
from orca_math.train.trainers import build_trainer, deepspeed_dict, resolve_on_worker

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "ray_train"
TRAIN_LOG = "train_log.json"
# Config keys that may change between a crash and --resume without invalidating the checkpoint.
RESUMABLE_CHANGES = {"max_steps", "max_time_s", "max_tokens", "keep_checkpoints", "checkpoints_to_keep", "scaling"}


class ResumeError(ValueError):
    """--resume asked to continue a checkpoint written by a different model, data or config."""


def _session_step_counter():
    from transformers import TrainerCallback

    class SessionStepCounter(TrainerCallback):
        """Optimizer steps and input tokens of this process's session (not restored from a checkpoint)."""

        def __init__(self):
            self.steps = 0
            self.tokens_at_start = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.tokens_at_start = state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            self.steps += 1

    return SessionStepCounter()


def _budget(max_time_s: float | None = None, max_tokens: int | None = None):
    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        """Stop once the loop has run ``max_time_s`` or trained on ``max_tokens`` input tokens,
        with the learning-rate schedule fitted to whichever comes first.

        A schedule made for ``max_steps`` and cut short ends at a high learning rate (a cosine cut
        halfway is still at half its peak), and the model is worse than a shorter schedule run to
        its end. So the schedule reads its position as the furthest of the progresses,
        steps/max_steps, elapsed/max_time_s and tokens/max_tokens: on a slow machine (or on longer
        sequences than max_steps was sized for) the same schedule is stretched over the budget and
        anneals as it runs out.

        The clock counts only once a tenth of its budget has passed; from then on it moves the
        schedule where the pace so far would not finish max_steps inside the budget. The first
        steps run slower than the rest (kernels built for each new shape, the longest batch first),
        and a clock read from the first step moved the warm-up of runs that finish well inside the
        cap: two runs of one command then differed by 5 points (measured). Where the steps finish
        first nothing changes and runs reproduce.
        """

        def __init__(self):
            self.started, self.hit, self.fitted, self.state = time.perf_counter(), None, False, None

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def progress(self) -> float:
            """The furthest of the time and token budgets' progress, 0 to 1 (0 without a budget)."""
            spent = []
            if max_time_s and (elapsed := time.perf_counter() - self.started) >= max_time_s / 10:
                spent.append(min(1.0, elapsed / max_time_s))
            if max_tokens and self.state is not None:
                spent.append(min(1.0, self.state.num_input_tokens_seen / max_tokens))
            return max(spent, default=0.0)

        def position(self, step: int, max_steps: int) -> float:
            """The schedule position of optimizer step ``step``: itself, or further where a budget binds."""
            return max(step, self.progress() * max_steps)

        def on_step_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            self.state = state
            if self.fitted or state is None or not state.max_steps:
                return
            self.fitted = True
            # Accelerate wraps the LambdaLR that transformers' schedules are.
            inner = getattr(lr_scheduler, "scheduler", lr_scheduler)
            lambdas = getattr(inner, "lr_lambdas", None)
            if lambdas is None:
                log.warning("max_time_s/max_tokens: %s has no lr_lambdas; the budget stops training but the "
                            "schedule is not fitted to it", type(inner).__name__)
                return
            max_steps = state.max_steps
            inner.lr_lambdas = [lambda step, f=f: f(self.position(step, max_steps)) for f in lambdas]

        def on_step_end(self, args, state, control, **kwargs):
            self.state = state
            if max_time_s and time.perf_counter() - self.started >= max_time_s:
                self.hit = "time"
            elif max_tokens and state is not None and state.num_input_tokens_seen >= max_tokens:
                self.hit = "tokens"
            control.should_training_stop = control.should_training_stop or self.hit is not None

    return Budget()


def _checkpoint_step(hf_checkpoint: Path) -> int:
    state = hf_checkpoint / "trainer_state.json"
    return int(json.loads(state.read_text(encoding="utf-8"))["global_step"]) if state.exists() else 0


def _last_hf_checkpoint(folder: Path) -> Path | None:
    """The trainer's newest complete checkpoint in ``folder`` (local mode), None if there is none.

    The trainer writes ``trainer_state.json`` after the weights, optimizer and RNG state, so a
    checkpoint a kill cut short has none and is passed over.
    """
    done = [p for p in folder.glob("checkpoint-*") if p.name.rpartition("-")[2].isdigit()
            and (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.rpartition("-")[2]), default=None)


def train_loop_per_worker(job: dict[str, Any]) -> None:
    """Runs on every Ray Train worker (or in the caller, in local mode): build the TRL trainer,
    train (or resume), save the model."""
    import ray
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    algo, local = job["algo"], job["local_checkpoints"] is not None
    cfg, precision = resolve_on_worker(CONFIG_CLASSES[algo].model_validate(job["config"]))
    columns = job["rows"] if local else ray.get(job["rows"])
    rank = ray.train.get_context().get_world_rank()
    # On a worker HF writes its checkpoints to node-local scratch and the callback copies them into
    # Ray storage; in local mode nothing copies them, so they are written where they are kept.
    scratch = Path(job["local_checkpoints"]) if local else Path(tempfile.mkdtemp(prefix=f"orca-math-{algo}-rank{rank}-"))
    counter = _session_step_counter()
    cap = _budget(cfg.max_time_s, cfg.max_tokens) if cfg.max_time_s or cfg.max_tokens else None
    try:
        trainer = build_trainer(algo, job["model"], columns, cfg, scratch,
                                ([] if local else [RayTrainReportCallback()]) + [counter] + ([cap] if cap else []))
        trainer = prepare_trainer(trainer)
        if local:
            hf_checkpoint = _last_hf_checkpoint(scratch)
            resumed_from_step = _checkpoint_step(hf_checkpoint) if hf_checkpoint else 0
            output = trainer.train(resume_from_checkpoint=str(hf_checkpoint) if hf_checkpoint else None)
        elif (checkpoint := ray.train.get_checkpoint()) is not None:
            with checkpoint.as_directory() as ckpt_dir:
                hf_checkpoint = Path(ckpt_dir) / RayTrainReportCallback.CHECKPOINT_NAME
                resumed_from_step = _checkpoint_step(hf_checkpoint)
                output = trainer.train(resume_from_checkpoint=str(hf_checkpoint))
        else:
            resumed_from_step = 0
            output = trainer.train()
        # Generation wants the KV cache back even if training turned it off.
        trainer.model.config.use_cache = True
        # Collective under ZeRO-3/FSDP (weights are gathered); only rank 0 writes files.
        trainer.save_model(job["out_dir"])
        if trainer.is_world_process_zero():
            summary = {
                "algo": algo,
                "world_size": ray.train.get_context().get_world_size(),
                "ray_train": "local mode (in the calling process)" if local else "worker group",
                "global_step": trainer.state.global_step,
                "resumed_from_step": resumed_from_step,
                "precision": precision,
                "stopped_by_time_cap": bool(cap and cap.hit == "time"),
                "stopped_by_token_budget": bool(cap and cap.hit == "tokens"),
                "steps_this_run": counter.steps,
                "tokens_this_run": trainer.state.num_input_tokens_seen - counter.tokens_at_start,
                "train_metrics": output.metrics,
                "log_history": trainer.state.log_history,
            }
            (Path(job["out_dir"]) / TRAIN_LOG).write_text(json.dumps(summary, indent=1, default=str))
    finally:
        if not local:
            shutil.rmtree(scratch, ignore_errors=True)


def _job_config(cfg: TrainConfigBase) -> dict[str, Any]:
    return cfg.model_copy(update={"deepspeed": deepspeed_dict(cfg.deepspeed)}).model_dump(mode="json")


def _prepare_run_dir(run_dir: Path, identity: dict[str, Any], resume: bool) -> None:
    """Clear old checkpoints (fresh run) or check they belong to this job (resume)."""
    job_file = run_dir.parent / f"{run_dir.name}.job.json"
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    elif job_file.exists():
        previous = json.loads(job_file.read_text(encoding="utf-8"))
        changed = sorted(
            k for k in set(previous) | set(identity)
            if k != "config" and previous.get(k) != identity.get(k)
        ) + sorted(
            f"config.{k}" for k in set(previous.get("config", {})) | set(identity["config"])
            if k not in RESUMABLE_CHANGES and previous["config"].get(k) != identity["config"].get(k)
        )
        if changed:
            raise ResumeError(f"{run_dir}: cannot resume, the checkpoint was written with different {changed}; "
                              f"delete {run_dir.parent} to start over")
    if resume and not run_dir.exists():
        log.info("--resume: no checkpoint in %s, training from the start", run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(json.dumps(identity, indent=1, sort_keys=True))


def _check_cluster_fits(num_workers: int, per_worker: dict[str, float], capacity: dict[str, float]) -> None:
    """Fail at once if no cluster could ever host the workers; warn if this one cannot yet."""
    import ray

    check_feasible(f"{num_workers} training worker(s) of {per_worker}", per_worker, num_workers,
                   "scaling.use_gpu, scaling.num_workers or scaling.resources_per_worker", capacity)
    have = ray.cluster_resources()
    short = {k: f"{v * num_workers:g} > {have.get(k, 0):g}" for k, v in per_worker.items()
             if v * num_workers > have.get(k, 0)}
    if short:
        log.warning("%d training workers need %s but the cluster has less right now (%s); "
                    "training waits until an autoscaler adds nodes", num_workers, per_worker, short)


def _check_local_device(use_gpu: bool | str) -> None:
    if use_gpu is True and not this_machine().cuda:
        raise ValueError("scaling.local_mode trains in this process, which sees no GPU, but scaling.use_gpu is true: "
                         "set scaling.use_gpu to auto or false, or scaling.local_mode to false to train on a GPU "
                         "worker elsewhere in the cluster")


def _fit_keeping_ctrl_c(trainer):
    """``trainer.fit()``, after which Ctrl-C is ours again.

    Ray Train replaces the SIGINT handler for the fit (Ctrl-C aborts the workers, then
    ``sys.exit(0)``) and leaves its handler installed afterwards, so a later Ctrl-C (say, while
    sampling) only "aborts" the finished run. Put ours back, and report Ray's abort as the
    interrupt it was, not a clean exit.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return trainer.fit()  # Ray installs no handler off the main thread either
    previous = signal.getsignal(signal.SIGINT)
    try:
        return trainer.fit()
    except SystemExit as e:
        raise KeyboardInterrupt("SIGINT") from e
    finally:
        if previous is not None:  # None: a handler not set from Python, which we cannot put back
            signal.signal(signal.SIGINT, previous)


def fit_on_ray(
    algo: str,
    model: str,
    columns: dict[str, list],
    cfg: TrainConfigBase,
    out_dir: str | Path,
    resume: bool = False,
    run_name: str | None = None,
    data_hash: str | None = None,
) -> dict[str, Any]:
    """Train ``algo`` on ``columns`` with Ray Train; the model lands in ``out_dir``. Returns the train log."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from orca_math.common.ray_runtime import ensure_ray

    # Ray Train's print patch tees every print into its logger: HF's log lines show twice and the
    # stdout that `datasets` captures while hashing functions leaks into the logs. Users may re-enable.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    ensure_ray()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    name = run_name or algo
    storage = out_dir / CHECKPOINT_DIR
    scaling = cfg.scaling
    if scaling.in_process:
        # This process trains: auto is decided by what it sees (resolve_on_worker), not by the cluster.
        _check_local_device(scaling.use_gpu)
    else:
        # Devices are decided here, against the cluster; precision by each worker, for its own node.
        capacity = cluster_capacity()
        scaling = scaling.model_copy(update={"use_gpu": resolve_use_gpu(scaling.use_gpu, capacity)})
        cfg = cfg.model_copy(update={"scaling": scaling})
        per_worker = dict(scaling.resources_per_worker or {"CPU": 1})
        if scaling.use_gpu:
            per_worker.setdefault("GPU", 1)
        _check_cluster_fits(scaling.num_workers, per_worker, capacity)
    job_config = _job_config(cfg)
    _prepare_run_dir(storage / name, {"algo": algo, "model": model, "data_hash": data_hash, "config": job_config},
                     resume)
    (out_dir / TRAIN_LOG).unlink(missing_ok=True)
    job = {"algo": algo, "model": model, "config": job_config, "out_dir": str(out_dir),
           # Workers fetch the rows from the object store; in local mode they never leave this process.
           "rows": columns if scaling.in_process else ray.put(columns),
           "local_checkpoints": str(storage / name) if scaling.in_process else None}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=job,
        scaling_config=scaling.ray_scaling_config(),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoints_to_keep),
            failure_config=FailureConfig(max_failures=scaling.max_failures),
        ),
    )
    result = _fit_keeping_ctrl_c(trainer)
    train_log = json.loads((out_dir / TRAIN_LOG).read_text(encoding="utf-8"))
    if scaling.in_process:
        last = _last_hf_checkpoint(storage / name)
        train_log["ray_checkpoint"] = str(last) if last else None
    else:
        train_log["ray_checkpoint"] = result.checkpoint.path if result.checkpoint else None
    if not cfg.keep_checkpoints:
        shutil.rmtree(storage / name, ignore_errors=True)
        (storage / f"{name}.job.json").unlink(missing_ok=True)
        if storage.exists() and not any(storage.iterdir()):
            storage.rmdir()
        train_log["ray_checkpoint"] = None
    return train_log
