"""Deciding what to rerun: each stage's fingerprint chains its config with its upstream stages'.

A stage is skipped when the manifest says it finished with the same fingerprint. Changing a
stage's config changes its fingerprint and, through the chain, every later stage's, so the
stage and everything after it rerun. A stage that was interrupted (same fingerprint, not done)
resumes from what it committed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from orca_math.manifest import RunManifest


def fingerprint(stage: str, config_hash: str, upstream: list[str], inputs: dict[str, str]) -> str:
    """Hash of everything a stage's output depends on."""
    blob = json.dumps({"stage": stage, "config": config_hash, "upstream": upstream, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Action(str, Enum):
    SKIP = "skip"  # finished with this fingerprint
    RESUME = "resume"  # started with this fingerprint, not finished: keep what it committed
    RUN = "run"  # never ran, or ran with another fingerprint: start clean


@dataclass
class StagePlan:
    name: str
    fingerprint: str
    action: Action


def plan_stage(manifest: RunManifest, name: str, fp: str) -> StagePlan:
    """What to do with stage ``name`` given the manifest."""
    entry = manifest.get(name) or {}
    if entry.get("fingerprint") != fp:
        return StagePlan(name, fp, Action.RUN)
    if entry.get("status") == "done":
        return StagePlan(name, fp, Action.SKIP)
    return StagePlan(name, fp, Action.RESUME)


def prepare_stage(manifest: RunManifest, plan: StagePlan, out_dir: Path) -> None:
    """Before running: a fresh run clears the stage's old outputs; both mark the entry not-done
    (so the stage's own skip check cannot reuse stale results) and store the fingerprint."""
    if plan.action is Action.RUN and out_dir.exists():
        shutil.rmtree(out_dir)
    manifest.update(plan.name, status="pending", fingerprint=plan.fingerprint)
