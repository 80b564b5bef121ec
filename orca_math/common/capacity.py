"""What the Ray cluster has or could get, checked before anything waits on it; and waits with an end.

Ray queues a request no node can meet forever (the autoscaler logs "No available node types can
fulfill resource request" and nothing returns), and Ray Train retries a worker group that cannot
start without limit, while the head node bills. So every place that waits for resources (engine
hosts, training workers, the self-hosted teacher, the judge) does two things:

- :func:`check_feasible` first, against node *shapes*, not cluster totals: a bundle must fit on one
  node, and ``count`` bundles must fit across the nodes there are or could be: every live node, and
  every autoscaler node type at its ``max_workers``. 16 engines of ``{GPU: 1, sampler: 1}`` need 16
  such slots; a cluster whose sampler nodes add up to 16 GPUs but whose teacher pins one of them is
  caught by the wait, not here (that GPU exists; it is busy). Fails in milliseconds.
- :func:`wait_started` then bounds the wait for what was asked (actors scheduled, a placement
  group placed) by a stated timeout, long enough for an autoscaler to boot a cold GPU node
  (:data:`COLD_NODE_S`) where the cluster has an autoscaler, and ends in one line naming the
  resource that never came.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# A cold GPU node: instance boot (2-3 min), the ~10 GB CUDA image pulled (3-8 min), setup commands
# and `ray start` (1-3 min). The timeouts' defaults: 20 minutes where an autoscaler may add nodes.
COLD_NODE_S = 1200.0
# Where no autoscaler can add a node, what is not free now frees only when another stage ends.
STATIC_CLUSTER_S = 120.0
BUILTIN = frozenset({"CPU", "GPU", "memory", "object_store_memory"})


class ClusterTooSmallError(RuntimeError):
    """A stage asked for resources no node of the Ray cluster has, nor could an autoscaler add."""


class StartTimeoutError(TimeoutError):
    """What a stage asked for did not start within its timeout (no node came, or none came free)."""


@dataclass(frozen=True)
class NodeShape:
    """One kind of node: the resources one such node has, and how many of them there are or can be."""

    name: str
    resources: dict[str, float]
    count: int  # -1: as many as needed (an autoscaler node type without a limit)

    def slots(self, request: dict[str, float]) -> float:
        """How many ``request`` bundles these nodes hold together (inf for an unlimited type)."""
        wanted = {k: v for k, v in request.items() if v > 0}
        per_node = min((math.floor(self.resources.get(k, 0.0) / v + 1e-9) for k, v in wanted.items()), default=1)
        if per_node <= 0:
            return 0
        return math.inf if self.count < 0 else per_node * self.count


@dataclass(frozen=True)
class Capacity:
    """The nodes a cluster has (``live``) and the ones its autoscaler could start (``types``)."""

    live: tuple[NodeShape, ...]
    types: tuple[NodeShape, ...] = ()
    autoscaling: bool = field(default=False)

    @classmethod
    def one_node(cls, resources: dict[str, float]) -> "Capacity":
        """A cluster of one fixed node (tests, a laptop)."""
        return cls((NodeShape("node", dict(resources), 1),))

    def totals(self) -> dict[str, float]:
        """The most of each resource the cluster can ever have."""
        def add(shapes):
            out: dict[str, float] = {}
            for s in shapes:
                for k, v in s.resources.items():
                    out[k] = out.get(k, 0.0) + (math.inf if s.count < 0 else v * s.count)
            return out
        now, most = add(self.live), add(self.types)
        return {k: max(now.get(k, 0.0), most.get(k, 0.0)) for k in set(now) | set(most)}

    def slots(self, request: dict[str, float]) -> float:
        """How many ``request`` bundles can ever be placed at once: the live nodes, or the node types
        at their limits, whichever holds more (live nodes are instances of the types)."""
        return max(sum(s.slots(request) for s in self.live), sum(s.slots(request) for s in self.types))

    def offered_by(self, request: dict[str, float]) -> list[str]:
        """The names of the nodes and node types on which one ``request`` bundle fits."""
        return sorted({s.name for s in self.live + self.types if s.slots(request) > 0})

    def start_timeout(self, configured: float | None) -> float:
        """``configured``, else a cold node's boot where an autoscaler may add nodes, else a short wait."""
        if configured is not None:
            return configured
        return COLD_NODE_S if self.autoscaling else STATIC_CLUSTER_S


def node_name(node: dict[str, Any]) -> str:
    """A live node as the user knows it: its node type (the launcher's label), else its custom resources."""
    import ray._raylet

    group = (node.get("Labels") or {}).get(ray._raylet.RAY_NODE_GROUP_KEY)
    if group:
        return group
    custom = sorted(k for k in node.get("Resources", {}) if k not in BUILTIN and not k.startswith("node:")
                    and not k.startswith("accelerator_type:"))
    return f"node with {'/'.join(custom)}" if custom else "node without custom resources"


def cluster_capacity() -> Capacity:
    """The connected Ray cluster's nodes, and its autoscaler's node types where a cluster config says."""
    import ray

    live = tuple(NodeShape(node_name(n), {k: float(v) for k, v in n["Resources"].items()}, 1)
                 for n in ray.nodes() if n.get("Alive"))
    types: tuple[NodeShape, ...] = ()
    try:
        from ray._private.state import state

        # The same private call Ray Data's autoscaling check uses; None without an autoscaler.
        config = state.get_cluster_config()
        if config is not None:
            types = tuple(NodeShape(g.name, {k: float(v) for k, v in g.resources.items()}, int(g.max_count))
                          for g in config.node_group_configs if g.max_count != 0)
    except (AttributeError, ImportError, RuntimeError) as e:
        log.debug("no autoscaler config readable (%s): the cluster is what it has now", e)
    autoscaling = any(t.count < 0 or t.count > 0 for t in types)
    return Capacity(live, types, autoscaling)


def check_custom(resources: dict[str, float], settings: str) -> None:
    """A config's ``resources`` field: custom resources only (CPUs and GPUs come from ``settings``), >= 0."""
    builtin = sorted(BUILTIN & set(resources))
    if builtin:
        raise ValueError(f"resources takes custom resources only; set {builtin} with {settings}")
    negative = {k: v for k, v in resources.items() if v < 0}
    if negative:
        raise ValueError(f"resources must be >= 0, got {negative}")


def describe(request: dict[str, float]) -> str:
    """``{GPU: 1, sampler: 1}``, the way a user writes it in a config."""
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(request.items())) + "}"


def check_feasible(what: str, request: dict[str, float], count: int, settings: str,
                   capacity: Capacity | None = None) -> None:
    """Fail now if ``count`` x ``request`` can never be placed on the cluster, naming ``settings``."""
    capacity = cluster_capacity() if capacity is None else capacity
    slots = capacity.slots(request)
    if slots >= count:
        return
    totals = capacity.totals()
    if slots == 0:
        short = {k: (v, max((s.resources.get(k, 0.0) for s in capacity.live + capacity.types), default=0.0))
                 for k, v in request.items() if v > 0}
        detail = "no node has " + describe(request) + " on one node"
        lacking = [f"{k}: needs {need:g}, cluster can have {totals.get(k, 0.0):g}" for k, (need, _) in sorted(short.items())
                   if totals.get(k, 0.0) < need * count]
        if lacking:
            detail += " (" + ", ".join(lacking) + ")"
    else:
        detail = (f"{count} x {describe(request)} needed, at most {slots:g} fit on "
                  f"{', '.join(capacity.offered_by(request))}")
    raise ClusterTooSmallError(f"{what} can never start on this Ray cluster: {detail}; change {settings}, "
                               "or add nodes that have these resources")


def wait_started(what: str, request: dict[str, float], count: int, refs: list, timeout_s: float) -> None:
    """Wait for ``refs`` (``actor.__ray_ready__.remote()``, ``placement_group.ready()``) at most
    ``timeout_s``; then fail in one line naming what never came, after ``check_feasible`` passed."""
    import ray

    started = time.monotonic()
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    if pending:
        raise StartTimeoutError(
            f"{what}: {len(pending)} of {count} x {describe(request)} did not start within {timeout_s:.0f} s: "
            f"no node with {describe(request)} came free (an autoscaler that cannot start one, or another "
            "stage or the teacher holding it); raise the start timeout or free those resources")
    ray.get(ready)  # an actor whose constructor failed raises here, with its own error
    log.debug("%s started in %.1fs", what, time.monotonic() - started)
