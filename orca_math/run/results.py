"""The results table of a run: GSM8K pass@1 after every stage, as Markdown, JSON and a plot."""

from __future__ import annotations

import json
from pathlib import Path


def results_markdown(results: list[dict], metric: str = "GSM8K pass@1") -> str:
    """A Markdown table: stage, model, pass@1, n."""
    lines = [f"| stage | model | {metric} | n |", "|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['model']} | {r['accuracy']:.4f} | {r['n']} |" for r in results]
    return "\n".join(lines) + "\n"


def plot_results(results: list[dict], path: Path, title: str) -> Path:
    """Accuracy by stage as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(results)), 3.5))
    xs = [r["stage"] for r in results]
    ys = [100 * r["accuracy"] for r in results]
    ax.plot(xs, ys, marker="o")
    for x, y in zip(xs, ys):
        ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, max(100, max(ys, default=0) + 5))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_results(results: list[dict], run_dir: Path, title: str, metric: str = "GSM8K pass@1") -> str:
    """Write results.json, results.md and results.png under ``run_dir``; return the Markdown."""
    md = results_markdown(results, metric)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    (run_dir / "results.md").write_text(f"# {title}\n\n{md}")
    plot_results(results, run_dir / "results.png", title)
    return md
