"""Loss curves and final metrics from a HF trainer's ``log_history``, for the manifest and a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Extra per-step metrics worth plotting for preference training (TRL's names).
PREFERENCE_METRICS = ("rewards/margins", "rewards/accuracies", "kl")


def metric_curve(log_history: list[dict], key: str) -> list[list[float]]:
    """``[[step, value], ...]`` for every logged step that has ``key``."""
    return [[int(h["step"]), float(h[key])] for h in log_history if key in h and "step" in h]


def loss_curve(log_history: list[dict]) -> list[list[float]]:
    """The training loss as ``[[step, loss], ...]`` (the final summary entry has no ``loss`` key)."""
    return metric_curve(log_history, "loss")


def final_metrics(train_log: dict[str, Any]) -> dict[str, Any]:
    """What a manifest entry keeps: first/last logged loss, steps, throughput, preference metrics."""
    history = train_log["log_history"]
    curve = loss_curve(history)
    metrics = {k: v for k, v in train_log.get("train_metrics", {}).items() if isinstance(v, (int, float))}
    out: dict[str, Any] = {
        "global_step": train_log["global_step"],
        "resumed_from_step": train_log["resumed_from_step"],
        "steps_this_run": train_log["steps_this_run"],
        "tokens_this_run": train_log.get("tokens_this_run"),
        "world_size": train_log["world_size"],
        "ray_train": train_log.get("ray_train"),
        "stopped_by_time_cap": train_log.get("stopped_by_time_cap", False),
        "stopped_by_token_budget": train_log.get("stopped_by_token_budget", False),
        "first_loss": curve[0][1] if curve else None,
        "last_loss": curve[-1][1] if curve else None,
        **metrics,
    }
    runtime = metrics.get("train_runtime")
    if runtime and train_log.get("tokens_this_run"):
        # Non-padding input tokens of all workers per second of this session's training loop.
        out["train_tokens_per_second"] = train_log["tokens_this_run"] / runtime
    for key in PREFERENCE_METRICS:
        values = metric_curve(history, key)
        if values:
            out[f"last_{key.replace('/', '_')}"] = values[-1][1]
    return out


def plot_curves(log_history: list[dict], path: str | Path, title: str) -> Path:
    """Loss (and preference metrics when present) against step, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extra = [k for k in PREFERENCE_METRICS if metric_curve(log_history, k)]
    fig, axes = plt.subplots(1, 1 + len(extra), figsize=(5 * (1 + len(extra)), 3.5), squeeze=False)
    for ax, key in zip(axes[0], ["loss", *extra]):
        points = metric_curve(log_history, key)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 50 else None)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0][0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
