"""The stage runner: what every stage of the recipe would otherwise repeat, in one place.

A :class:`Stage` names its config, what it reads (upstream stages and other inputs), where it
writes, what it frees before it runs (``frees``) and the function that runs it. :class:`Runner`
gives each stage one **signature**, the only cache key of the project: a hash of the stage's name,
its config's identity (the config minus the settings it declares as execution-only, see
``StageConfig.execution_fields``), the signatures of the stages it reads and its other inputs
(a training stage's data by content). Paths inside the run folder count relative to it, so a
moved run folder still resumes. Then, per stage, the runner alone decides:

- same signature, finished: skipped;
- same signature, not finished (killed, failed): run again with ``resume=True``, keeping what it
  committed (checkpoints, written parts);
- a new signature where only the config's ``resumable_fields`` changed (generate's seed ``limit``,
  training's ``max_steps``), finished or not: run again with ``resume=True`` too, so only the new
  work is done (the new seeds asked of the teacher; training continued from its last checkpoint);
- any other new signature: its old outputs are removed and it runs from scratch, and the log says
  what changed (a config key, an upstream stage, an input). Through the chain, every stage after
  it reruns too.

The runner writes the stage's manifest entry (status, signature, config, inputs, wall time, the
fields the stage returns), checks rows in == rows out + rows quarantined, exports the stage's
metrics, and tells an ``on_event`` listener (the demo's progress lines) of every start, end and skip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from orca_math.common.config import StageConfig
from orca_math.common.manifest import RunManifest
from orca_math.common.records import RowCountError

log = logging.getLogger(__name__)

# The manifest layout this runner writes; a run folder written by a version before stage
# signatures has none and is refused rather than silently redone (see ManifestFormatError).
MANIFEST_FORMAT = 2


class ManifestFormatError(ValueError):
    """A run folder whose manifest this version cannot match stage by stage."""


@dataclass(frozen=True)
class StageContext:
    """What a running stage is told: where to write, whether to resume, the manifest for progress."""

    name: str
    out: Path
    resume: bool
    manifest: RunManifest


@dataclass(frozen=True)
class Stage:
    """One step of the recipe."""

    name: str
    config: StageConfig
    run: Callable[[StageContext], dict | None]  # returns the fields its manifest entry records
    out: Path
    after: tuple[str, ...] = ()  # stages whose outputs it reads: their signatures chain into its own
    # Anything else it reads: paths, dataset specs, model ids. A callable is asked when the stage's
    # turn comes (the content hash of data an upstream stage writes).
    inputs: dict[str, str | Callable[[], str]] = field(default_factory=dict)
    # What must be gone before it runs, so its workers find the resources free: "engines" (every
    # engine host), "gpu_engines" (the hosts on GPUs), "judge" (the judge's Serve replicas).
    frees: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.frees) - set(FREES))
        if unknown:  # a typo would otherwise leave the resources held, and the stage waiting for them
            raise ValueError(f"stage {self.name}: frees {unknown}: unknown (known: {', '.join(FREES)})")


FREES = ("engines", "gpu_engines", "judge")


def free(what: tuple[str, ...]) -> None:
    """Release what a stage declares in ``Stage.frees`` (engine hosts, the judge)."""
    if "engines" in what or "gpu_engines" in what:
        from orca_math.common.sampling.hosts import release_engines

        release_engines(gpu_only="engines" not in what)
    if "judge" in what:
        from orca_math.judge.serve_judge import release_judge

        release_judge()


def content_hash(spec: str | Path) -> str:
    """The content of a local file or folder (every file under it, by relative name), hashed; a
    spec that names no local path (``gsm8k-train``, ``hf:ID``) is its own identity."""
    p = Path(spec)
    if not p.exists():
        return str(spec)
    h = hashlib.sha256()
    for f in sorted(q for q in ([p] if p.is_file() else p.rglob("*")) if q.is_file()):
        h.update(f"{f.relative_to(p) if f != p else f.name}\0".encode())
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()[:16]


class Runner:
    """Runs stages in order into ``run_dir``, skipping or resuming each as its manifest entry allows."""

    def __init__(self, run_dir: str | Path, manifest: RunManifest | None = None, export_metrics: bool = False,
                 on_event: Callable[[str, str, dict], None] | None = None):
        self.run_dir = Path(run_dir)
        self.manifest = manifest or RunManifest(self.run_dir / "manifest.json")
        self.export_metrics = export_metrics
        self.on_event = on_event
        self.signatures: dict[str, str] = {}
        self._inputs: dict[str, dict[str, str]] = {}
        self.storage_checked = False
        fmt = self.manifest.data.get("format")
        if self.manifest.stages and fmt != MANIFEST_FORMAT:
            raise ManifestFormatError(
                f"{self.manifest.path}: written by an orca-math before stage signatures (manifest format "
                f"{fmt or 1}, this version writes {MANIFEST_FORMAT}), so its stages cannot be matched to this "
                "version's: use a new --out folder, or delete this one to start over")
        self.manifest.data["format"] = MANIFEST_FORMAT

    def _relative(self, text: str) -> str:
        return text.replace(str(self.run_dir), "RUN_DIR")

    def inputs(self, stage: Stage) -> dict[str, str]:
        """The stage's inputs as recorded (callables asked once, run-folder paths relative)."""
        if stage.name not in self._inputs:
            self._inputs[stage.name] = {k: self._relative(str(v() if callable(v) else v))
                                        for k, v in stage.inputs.items()}
        return self._inputs[stage.name]

    def signature(self, stage: Stage) -> str:
        """The stage's cache key: its name, config identity, upstream signatures and other inputs."""
        blob = json.dumps({"stage": stage.name, "config": stage.config.identity(),
                           "after": {u: self.signatures[u] for u in stage.after},
                           "inputs": self.inputs(stage)}, sort_keys=True)
        return hashlib.sha256(self._relative(blob).encode()).hexdigest()[:16]

    def changes(self, stage: Stage, entry: dict) -> list[tuple[str, str]]:
        """What differs from the stage's last run: (key, in words), config keys as ``config.a.b``."""
        old_cfg, new_cfg = _flatten(entry.get("identity") or {}), _flatten(stage.config.identity())
        changed = [(f"config.{k}", f"{k}: {old_cfg.get(k, '<unset>')!r} -> {new_cfg.get(k, '<unset>')!r}")
                   for k in sorted(old_cfg.keys() | new_cfg.keys()) if old_cfg.get(k) != new_cfg.get(k)]
        old_after = entry.get("after") or {}
        changed += [(f"after.{u}", f"upstream {u} changed") for u in stage.after
                    if old_after.get(u) != self.signatures[u]]
        old_inputs, inputs = entry.get("inputs") or {}, self.inputs(stage)
        changed += [(f"input.{k}", f"input {k}: {old_inputs.get(k)!r} -> {v!r}")
                    for k, v in inputs.items() if old_inputs.get(k) != v]
        return changed

    def what_changed(self, stage: Stage, entry: dict) -> str:
        """Why a stage that ran before must run again, in words."""
        if not entry.get("signature"):
            return "first run"
        changed = [words for _, words in self.changes(stage, entry)]
        return "; ".join(changed[:8]) + (f" (+{len(changed) - 8} more)" if len(changed) > 8 else "") or "settings"

    def status(self, stage: Stage) -> str:
        """'skip', 'resume' or 'run' for ``stage`` (its upstream stages' signatures must be known)."""
        entry = self.manifest.get(stage.name) or {}
        if entry.get("signature") == self.signature(stage):
            return "skip" if entry.get("status") == "done" else "resume"
        changed = self.changes(stage, entry) if entry.get("signature") else []
        resumable = stage.config.resumable_fields
        if changed and all(k.startswith("config.") and k.split(".")[1] in resumable for k, _ in changed):
            return "resume"
        return "run"

    def run(self, stage: Stage) -> dict:
        """Run ``stage`` unless it already finished with this signature; return its manifest entry."""
        self._inputs.pop(stage.name, None)  # asked afresh: an upstream stage may just have rewritten them
        sig = self.signature(stage)
        entry = self.manifest.get(stage.name) or {}
        action = self.status(stage)
        self.signatures[stage.name] = sig
        if action == "skip":
            log.info("[%s] done already (signature %s): skipped", stage.name, sig)
            self._tell("skip", stage.name)
            return entry
        if action == "run":
            if entry:
                log.info("[%s] rerunning from scratch: %s", stage.name, self.what_changed(stage, entry))
            if stage.out.exists():
                shutil.rmtree(stage.out) if stage.out.is_dir() else stage.out.unlink()
            self.manifest.stages.pop(stage.name, None)
        elif action == "resume" and entry.get("signature") != sig:
            log.info("[%s] resuming with %s (keeps what it committed)", stage.name, self.what_changed(stage, entry))
        self.check_storage([stage])
        free(stage.frees)
        log.info("[%s] %s -> %s", stage.name, "resuming" if action == "resume" else "running", stage.out)
        self.manifest.update(
            stage.name, status="running", signature=sig, error=None, started_at=time.time(),
            config=stage.config.model_dump(mode="json"), identity=stage.config.identity(),
            after={u: self.signatures[u] for u in stage.after},
            inputs=self.inputs(stage))
        if self.export_metrics:
            from orca_math.common import metrics

            metrics.stage_started(stage.name)
        self._tell("start", stage.name)
        started = time.perf_counter()
        try:
            fields = stage.run(StageContext(stage.name, stage.out, action == "resume", self.manifest)) or {}
            _check_counts(stage.name, {**(self.manifest.get(stage.name) or {}), **fields})
        except BaseException as e:
            self.manifest.update(stage.name, status="failed", error=f"{type(e).__name__}: {e}"[:2000],
                                 wall_s=round(time.perf_counter() - started, 3))
            if not any(n.startswith("stage ") for n in getattr(e, "__notes__", ())):  # the innermost stage
                e.add_note(f"stage {stage.name} failed; rerun the same command to resume ({self.run_dir})")
            raise
        entry = self.manifest.update(stage.name, **{**fields, "status": "done", "finished_at": time.time(),
                                                    "wall_s": round(time.perf_counter() - started, 3)})
        if self.export_metrics:
            from orca_math.common import metrics

            metrics.stage_finished(stage.name, entry)
        log.info("[%s] finished in %.1fs", stage.name, entry["wall_s"])
        self._tell("end", stage.name)
        return entry

    def run_all(self, stages: Iterable[Stage]) -> None:
        stages = list(stages)
        self.check_storage(stages)
        for stage in stages:
            self.run(stage)

    def check_storage(self, stages: list[Stage]) -> None:
        """Once per runner, before anything runs on a cluster: every node (and node type the stages
        ask for) sees the run folder (``common/storage.py``). Nothing to check without a cluster."""
        from orca_math.common.storage import check_shared, custom_requests

        if self.storage_checked:
            return
        self.storage_checked = True
        joined = "ray" in sys.modules and sys.modules["ray"].is_initialized()
        if not joined and not os.environ.get("RAY_ADDRESS"):
            return  # a stage command on one machine: the local Ray it may start is this node only
        from orca_math.common.ray_runtime import ensure_ray

        ensure_ray()
        check_shared(self.run_dir.resolve(), custom_requests(s.config for s in stages))

    def _tell(self, event: str, name: str) -> None:
        if self.on_event is not None:
            self.on_event(event, name, self.manifest.get(name) or {})


def run_stage(stage: Stage, manifest_dir: str | Path | None = None) -> dict:
    """Run one stage on its own (a stage command such as ``orca-math eval``), its manifest in
    ``manifest_dir`` (default: the stage's output folder, or its parent for a single file)."""
    root = Path(manifest_dir) if manifest_dir else (stage.out if not stage.out.suffix else stage.out.parent)
    return Runner(root).run(stage)


def _check_counts(name: str, entry: dict) -> None:
    if "rows_in" in entry and "rows_out" in entry:
        out, quarantined = entry["rows_out"], entry.get("rows_quarantined", 0)
        if entry["rows_in"] != out + quarantined:
            raise RowCountError(f"{name}: rows in ({entry['rows_in']}) != rows out ({out}) + quarantined ({quarantined})")


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
