"""The thin Ray Train shell around a TRL trainer: ``train_loop_per_worker`` + ``TorchTrainer``.

Every worker builds its own dataset and trainer (TRL tokenizes at construction), wraps it with
``prepare_trainer`` and hands each HF checkpoint to Ray Train. Ray Train keeps checkpoints under
``OUT/ray_train/<name>``; rerunning with the same name makes ``ray.train.get_checkpoint()`` return
the latest one, and the HF trainer resumes from it (global step, optimizer, scheduler, RNG and data
position). A fresh (not resumed) run clears that folder first.

Checkpoints cannot fill a worker's disk. Each worker writes its part of a checkpoint (under ZeRO-3
every rank writes its optimizer shard) into one fixed scratch folder per stage and node,
``<scratch_dir>/orca-math-train/<name>-<hash of OUT>/rank<N>``. The folder is wiped when the stage
starts (so a rerun removes what a killed worker left), Ray Train copies each checkpoint to storage in
the background while training goes on and deletes the scratch copy once it is stored, and the next
save first waits for that: a worker's scratch holds at most one checkpoint.

Starting the workers waits at most ``scaling.start_timeout_s`` for their resources, then fails in
one line naming them; a request no node or node type could ever meet fails before anything starts
(``orca_math/common/capacity.py``).

With ``scaling.local_mode`` (one worker) the same loop runs in the calling process (Ray Train's local mode,
``num_workers=0``), the trainer writes its checkpoints straight into ``OUT/ray_train/<name>`` and a
resume starts from its newest complete one.

``OUT`` must be visible to every worker (one machine, or shared storage such as NFS on a
cluster), like any Ray Train ``storage_path``: rank 0 writes the final model there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from orca_math.common.capacity import Capacity, StartTimeoutError, check_feasible, cluster_capacity, describe
from orca_math.common.hardware import resolve_use_gpu, this_machine
from orca_math.train.config import CONFIG_CLASSES, TrainConfigBase
from orca_math.train.trainers import build_trainer, deepspeed_dict, resolve_on_worker

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "ray_train"
TRAIN_LOG = "train_log.json"
SCRATCH_FOLDER = "orca-math-train"
# Ray Train reads this in its controller (the driver's value is passed on) as how long a worker
# group's placement group may take to be placed.
WORKER_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"


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


def _saved_step(hf_checkpoint: Path) -> int | None:
    """The checkpoint's ``global_step``; None while its ``trainer_state.json`` is missing or half-written.

    The trainer writes that file in place, not by rename, so a kill (or a reader) can catch it empty.
    """
    try:
        return int(json.loads((hf_checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _checkpoint_step(hf_checkpoint: Path) -> int:
    return _saved_step(hf_checkpoint) or 0


def _last_hf_checkpoint(folder: Path) -> Path | None:
    """The trainer's newest complete checkpoint in ``folder`` (local mode), None if there is none.

    The trainer writes ``trainer_state.json`` after the weights, optimizer and RNG state, so a
    checkpoint a kill cut short has none, or only part of one, and is passed over.
    """
    done = [p for p in folder.glob("checkpoint-*") if p.name.rpartition("-")[2].isdigit()
            and _saved_step(p) is not None]
    return max(done, key=lambda p: int(p.name.rpartition("-")[2]), default=None)


def scratch_folder(scratch_dir: str | None, key: str) -> Path:
    """This node's scratch folder for one stage's checkpoints (``key``: the stage and its run folder).

    Fixed rather than a fresh temp folder, so that a rerun finds, and wipes, what a killed worker
    left there. ``~`` and ``$VARS`` in ``scratch_dir`` expand on the worker; None is the node's
    scratch (``common/storage.py``: ``ORCA_MATH_SCRATCH``, else the temp folder).
    """
    from orca_math.common.storage import scratch_root

    root = Path(os.path.expandvars(os.path.expanduser(scratch_dir))) if scratch_dir else scratch_root()
    return root / SCRATCH_FOLDER / key


def _scratch_key(name: str, run_dir: Path) -> str:
    # Two run folders on one node may both have a stage called "sft": the hash keeps them apart.
    return f"{name}-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]}"


def _scratch_reporter():
    import ray.train
    from ray.train import Checkpoint, CheckpointUploadMode
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class ReportFromScratch(TrainerCallback):
        """Hand each checkpoint to Ray Train from this worker's scratch; Ray stores it in the background
        and deletes the scratch copy once stored.

        Ray's own ``RayTrainReportCallback`` copies the checkpoint to a second temp folder and uploads it
        synchronously: three writes of every byte while training waits, and the trainer's copy is
        deleted only on rank 0 (transformers rotates checkpoints where ``should_save``), so under ZeRO-3
        ranks 1..N keep every optimizer shard. Here the trainer's own folder is the checkpoint
        (``CheckpointUploadMode.ASYNC`` with ``delete_local_checkpoint_after_upload``), and before the
        next save every worker waits until the previous one is stored (:meth:`wait_until_stored`):
        storage slower than the save cadence slows training instead of filling the disk.
        """

        def __init__(self):
            self.pending = False

        def wait_until_stored(self, state) -> None:
            """Block until every checkpoint this worker reported is stored and its scratch copy gone.

            Ray Train hands reports to its controller in the order they were made, so a report
            without a checkpoint returns only after the uploads before it. Every worker reports the
            same saves, so every worker calls this equally often (``ray.train.report`` is collective).
            """
            if self.pending:
                ray.train.report(_latest_metrics(state), checkpoint=None)
                self.pending = False

        def on_step_end(self, args, state, control, **kwargs):
            if control.should_save:  # set by DefaultFlowCallback, which runs before us
                self.wait_until_stored(state)

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            # A rank with nothing to save (none today: every rank writes its RNG state) reports none.
            checkpoint = Checkpoint.from_directory(str(folder)) if folder.is_dir() else None
            # Named by step: a rerun that saves the step again overwrites what a killed upload left.
            ray.train.report(_latest_metrics(state), checkpoint=checkpoint, checkpoint_dir_name=folder.name,
                             checkpoint_upload_mode=CheckpointUploadMode.ASYNC,
                             delete_local_checkpoint_after_upload=True)
            self.pending = True

    return ReportFromScratch()


def _latest_metrics(state) -> dict[str, Any]:
    """The newest value of every logged metric (``step`` included): what a Ray report carries."""
    metrics: dict[str, Any] = {}
    for entry in state.log_history:
        metrics.update(entry)
    return metrics


def _wipe_stage_scratch(folder: Path) -> None:
    """Remove what an earlier run of this stage left on this node, once per node, before any rank writes."""
    import ray.train
    from ray.train.collective import barrier

    if ray.train.get_context().get_local_rank() == 0 and folder.exists():
        log.info("removing %s: checkpoints an earlier, interrupted run of this stage left on this node", folder)
        shutil.rmtree(folder)
    barrier()


def train_loop_per_worker(job: dict[str, Any]) -> None:
    """Runs on every Ray Train worker (or in the caller, in local mode): build the TRL trainer,
    train (or resume), save the model."""
    import ray
    import ray.train
    from ray.train.huggingface.transformers import prepare_trainer

    algo, local = job["algo"], job["local_checkpoints"] is not None
    cfg, precision = resolve_on_worker(CONFIG_CLASSES[algo].model_validate(job["config"]))
    columns = job["rows"] if local else ray.get(job["rows"])
    rank = ray.train.get_context().get_world_rank()
    if local:
        # Nothing copies them in local mode, so they are written where they are kept.
        scratch, stage_scratch, reporter = Path(job["local_checkpoints"]), None, None
    else:
        stage_scratch = scratch_folder(cfg.scratch_dir, job["scratch_key"])
        _wipe_stage_scratch(stage_scratch)
        scratch, reporter = stage_scratch / f"rank{rank}", _scratch_reporter()
        scratch.mkdir(parents=True)
    counter = _session_step_counter()
    cap = _budget(cfg.max_time_s, cfg.max_tokens) if cfg.max_time_s or cfg.max_tokens else None
    try:
        from orca_math.common.storage import local_model

        trainer = build_trainer(algo, local_model(job["model"]), columns, cfg, scratch,
                                ([reporter] if reporter else []) + [counter] + ([cap] if cap else []))
        trainer = prepare_trainer(trainer)
        if local:
            hf_checkpoint = _last_hf_checkpoint(scratch)
            resumed_from_step = _checkpoint_step(hf_checkpoint) if hf_checkpoint else 0
            output = trainer.train(resume_from_checkpoint=str(hf_checkpoint) if hf_checkpoint else None)
        elif (checkpoint := ray.train.get_checkpoint()) is not None:
            # On storage a Ray checkpoint is the trainer's checkpoint folder, every rank's files merged.
            with checkpoint.as_directory() as ckpt_dir:
                resumed_from_step = _checkpoint_step(Path(ckpt_dir))
                output = trainer.train(resume_from_checkpoint=str(ckpt_dir))
        else:
            resumed_from_step = 0
            output = trainer.train()
        if reporter:
            reporter.wait_until_stored(trainer.state)  # the last checkpoint, before its folder goes
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
        if stage_scratch is not None:
            # After a failure an upload may still be reading it; the attempt is lost either way.
            shutil.rmtree(scratch, ignore_errors=True)
            with contextlib.suppress(OSError):  # another rank on this node is still using it
                stage_scratch.rmdir()


def _job_config(cfg: TrainConfigBase) -> dict[str, Any]:
    return cfg.model_copy(update={"deepspeed": deepspeed_dict(cfg.deepspeed)}).model_dump(mode="json")


def _prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Clear old checkpoints for a fresh run; on resume keep them (the runner decided they are this
    stage's: same model, data and settings, or only more of its budget, see ``common/runner.py``)."""
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    elif not run_dir.exists():
        log.info("resume: no checkpoint in %s, training from the start", run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)


def _check_cluster_fits(num_workers: int, per_worker: dict[str, float], capacity: Capacity,
                        timeout_s: float) -> None:
    """Fail at once if no cluster could ever host the workers; warn if this one cannot yet."""
    import ray

    check_feasible(f"{num_workers} training worker(s) of {describe(per_worker)}", per_worker, num_workers,
                   "scaling.use_gpu, scaling.num_workers or scaling.resources_per_worker", capacity)
    have = ray.available_resources()
    short = {k: f"{v * num_workers:g} > {have.get(k, 0):g}" for k, v in per_worker.items()
             if v * num_workers > have.get(k, 0)}
    if short:
        log.warning("%d training workers need %s but the cluster has less free right now (%s); "
                    "waiting up to %.0f s (scaling.start_timeout_s) for nodes or for them to come free",
                    num_workers, describe(per_worker), short, timeout_s)


@contextlib.contextmanager
def _workers_start_within(timeout_s: float, num_workers: int, per_worker: dict[str, float]):
    """Within it, a Ray Train fit waits at most ``timeout_s`` for its workers' resources, then raises
    :class:`StartTimeoutError` in one line naming them.

    Ray Train waits for the worker group's placement group for ``RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S``
    (60 s by default), then counts a controller failure and tries again, by default without limit
    (``FailureConfig.controller_failure_limit=-1``): a request no node comes for waits forever. The
    fit sets that limit to 0, so the first timeout ends it.
    """
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

    before = os.environ.get(WORKER_START_TIMEOUT_ENV)
    os.environ[WORKER_START_TIMEOUT_ENV] = f"{timeout_s:g}"  # read when the fit starts its controller
    try:
        yield
    except ControllerError as e:
        if not isinstance(e.controller_failure, WorkerGroupStartupTimeoutError):
            raise
        raise StartTimeoutError(
            f"training workers need {describe(per_worker)} x {num_workers}; none came within {timeout_s:.0f} s "
            "(no node with them came up or came free: an autoscaler that cannot start one, or another stage "
            "holding them); raise scaling.start_timeout_s or free those resources") from None
    finally:
        if before is None:
            os.environ.pop(WORKER_START_TIMEOUT_ENV, None)
        else:
            os.environ[WORKER_START_TIMEOUT_ENV] = before


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
    waiting = contextlib.nullcontext()
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
        timeout_s = capacity.start_timeout(scaling.start_timeout_s)
        _check_cluster_fits(scaling.num_workers, per_worker, capacity, timeout_s)
        waiting = _workers_start_within(timeout_s, scaling.num_workers, per_worker)
    job_config = _job_config(cfg)
    _prepare_run_dir(storage / name, resume)
    (out_dir / TRAIN_LOG).unlink(missing_ok=True)
    job = {"algo": algo, "model": model, "config": job_config, "out_dir": str(out_dir),
           # Workers fetch the rows from the object store; in local mode they never leave this process.
           "rows": columns if scaling.in_process else ray.put(columns),
           "local_checkpoints": str(storage / name) if scaling.in_process else None,
           "scratch_key": _scratch_key(name, out_dir)}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=job,
        scaling_config=scaling.ray_scaling_config(),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoints_to_keep),
            failure_config=FailureConfig(max_failures=scaling.max_failures, controller_failure_limit=0),
        ),
    )
    with waiting:
        result = _fit_keeping_ctrl_c(trainer)
    train_log = json.loads((out_dir / TRAIN_LOG).read_text(encoding="utf-8"))
    if scaling.in_process:
        last = _last_hf_checkpoint(storage / name)
        train_log["ray_checkpoint"] = str(last) if last else None
    else:
        train_log["ray_checkpoint"] = result.checkpoint.path if result.checkpoint else None
    if not cfg.keep_checkpoints:
        shutil.rmtree(storage / name, ignore_errors=True)
        if storage.exists() and not any(storage.iterdir()):
            storage.rmdir()
        train_log["ray_checkpoint"] = None
    return train_log
