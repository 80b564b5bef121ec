"""The run folder every node sees, checked before anything is spent; node-local scratch beside it.

**What a run folder may be.** An absolute path on a filesystem that every node of the cluster mounts
at the same path (EFS/NFS, FSx for Lustre, a GCS/S3 bucket through a FUSE mount): stages hand models
and Parquet files to each other by path, a trainer node writes M1 and sampler nodes load it, Ray Data
spreads read and write tasks over every node. Cloud URIs (``s3://...``) are refused: the training,
sampling and manifest code reads local paths, so mount the bucket instead. On one machine any
folder will do.

**Checked first** (:func:`check_shared`): on a cluster of more than one node (or one whose autoscaler
may add nodes), a marker written under the run folder is read back by a task on every live node and
on every node type the stages ask for by custom resource (which boots one of each where none is up:
a mount that fails is found in minutes, not at hour three when the first trainer node writes M1).
A node that cannot see it ends the run with one line naming the node type, the node and the path.

**Scratch** (:func:`scratch_root`) is node-local disk (``ORCA_MATH_SCRATCH``, else the temp folder):
training checkpoints before they are reported, and model folders copied off a network filesystem
before vLLM or TRL load them (:func:`local_model`). Nothing a later stage reads is left there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

SCRATCH_ENV = "ORCA_MATH_SCRATCH"
# Set by Ray's job supervisor in the driver of a `ray job submit` job (ray/_private/runtime_env/constants.py).
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
NETWORK_FS = ("nfs", "nfs4", "lustre", "fuse", "cifs", "smb3", "efs", "gcsfuse", "9p")


class StorageError(RuntimeError):
    """The run folder is not storage every node of the cluster sees."""


def check_run_folder(out: str | Path) -> None:
    """Refuse a run folder no cluster could share: a cloud URI, or a relative path under ``ray job submit``."""
    text = str(out)
    if "://" in text:
        raise StorageError(f"--out {text}: cloud URIs are not a run folder; mount the bucket on every node "
                           "(mountpoint-s3, gcsfuse) or use a shared filesystem (EFS/NFS), and give its path, "
                           "e.g. --out /mnt/shared/runs/NAME")
    if os.environ.get(RAY_JOB_ENV) and not Path(text).is_absolute():
        raise StorageError(f"--out {text} is relative: under `ray job submit` it would land in the job's copy of "
                           "its working dir on the head node (node-local, garbage-collected, a new copy for every "
                           "resubmit, so nothing resumes); give an absolute path on storage every node mounts, "
                           "e.g. --out /mnt/shared/runs/NAME")


def scratch_root() -> Path:
    """This node's scratch folder (``ORCA_MATH_SCRATCH``, e.g. a local NVMe; else the temp folder)."""
    return Path(os.environ.get(SCRATCH_ENV) or Path(tempfile.gettempdir()) / "orca-math")


def filesystem_type(path: str | Path) -> str:
    """The type of the filesystem holding ``path`` (``nfs4``, ``ext4``...), from /proc/mounts; '' if unknown."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return ""
    path = os.path.realpath(path)
    best, kind = "", ""
    for point, fs in mounts:
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fs
    return kind


def local_model(model: str) -> str:
    """``model`` as vLLM or TRL should load it: a folder on a network filesystem copied once to
    scratch (reading a 15 GB model over NFS from every engine at once is slower than one copy per
    node, and safetensors' mmap over NFS stalls on page faults); an HF id or a local folder as given."""
    path = Path(model)
    if not path.is_dir() or not any(filesystem_type(path).startswith(fs) for fs in NETWORK_FS):
        return model
    files = sorted(p for p in path.rglob("*") if p.is_file())
    stamp = hashlib.sha256("\n".join(f"{p.relative_to(path)} {p.stat().st_size} {p.stat().st_mtime_ns}"
                                     for p in files).encode()).hexdigest()[:16]
    local = scratch_root() / "models" / f"{path.name}-{stamp}"
    if not local.exists():
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}")
        shutil.copytree(path, tmp)
        try:
            tmp.rename(local)
        except OSError:  # another process on this node copied it first
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("model %s copied to node-local %s", path, local)
    return str(local)


def _read_marker(marker: str, token: str) -> dict[str, Any]:
    import ray

    from orca_math.common.capacity import node_name

    node_id = ray.get_runtime_context().get_node_id()
    node = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
    try:
        found = Path(marker).read_text()
        problem = None if found == token else "a different file is at that path (another filesystem)"
    except FileNotFoundError:
        problem = "not there"
    except OSError as e:
        problem = f"{type(e).__name__}: {e}"
    return {"node_id": node_id, "ip": node.get("NodeManagerAddress", "?"), "type": node_name(node),
            "problem": problem}


def custom_requests(configs: Iterable[Any]) -> list[dict[str, float]]:
    """The custom resources (node types) the configs ask for: engines' ``resources``, training's
    ``resources_per_worker``, the teacher's ``resources``, wherever they sit in a config."""
    from orca_math.common.capacity import BUILTIN

    found: list[dict[str, float]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in ("resources", "resources_per_worker") and isinstance(v, dict):
                    custom = {r: float(n) for r, n in v.items() if r not in BUILTIN and n}
                    if custom and custom not in found:
                        found.append(custom)
                else:
                    walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    for cfg in configs:
        walk(cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else cfg)
    return found


def check_shared(run_dir: Path, requests: list[dict[str, float]], timeout_s: float | None = None) -> None:
    """Fail in one line unless every live node, and a node of every type ``requests`` select, reads
    back a marker written under ``run_dir``. A no-op on one node without an autoscaler."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from orca_math.common.capacity import StartTimeoutError, cluster_capacity, describe

    capacity = cluster_capacity()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1 and not capacity.autoscaling:
        return
    folder = run_dir / ".orca-math"
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    marker = folder / f"storage-check-{token[:12]}"
    marker.write_text(token)
    read = ray.remote(num_cpus=0, max_retries=0)(_read_marker)
    checks = {read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
              .remote(str(marker), token): f"node {n['NodeManagerAddress']}" for n in nodes}
    for request in requests:
        if not any(all(n["Resources"].get(k, 0) > 0 for k in request) for n in nodes):
            # No such node is up: a sliver of its resource starts one (and any node of that type reads).
            checks[read.options(resources={k: 0.001 for k in request}).remote(str(marker), token)] = \
                f"a node with {describe(request)}"
    timeout = capacity.start_timeout(timeout_s)
    try:
        done, pending = ray.wait(list(checks), num_returns=len(checks), timeout=timeout)
        results = ray.get(done)
    finally:
        marker.unlink(missing_ok=True)
    for r in results:
        if r["problem"]:
            raise StorageError(f"run folder {run_dir} is not shared: {r['type']} node {r['ip']} "
                               f"({r['node_id'][:12]}) cannot read {marker} ({r['problem']}); mount the shared "
                               "filesystem at the same path on every node (cluster.yaml) or use another --out")
    if pending:
        raise StartTimeoutError(f"storage check: {', '.join(checks[p] for p in pending)} did not answer within "
                                f"{timeout:.0f} s, so {run_dir} could not be checked there")
    log.info("run folder %s: seen by %d node(s)", run_dir, len(results))
