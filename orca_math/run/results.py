"""The results table of a run: GSM8K pass@1 after every stage, as Markdown, JSON and a plot."""

from __future__ import annotations

import json
from pathlib import Path


def results_markdown(results: list[dict], metric: str = "GSM8K pass@1") -> str:
    """A Markdown table: stage, model, pass@1, n."""
    lines = [f"| stage | model | {metric} | n |", "|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['model']} | {r['accuracy']:.4f} | {r['n']} |" for r in results]
    return "\n".join(lines) + "\n"


ARM_OFFSET = 0.35  # how far right of the last round the control's marker sits: beside it, off the line


def plot_layout(results: list[dict]) -> dict:
    """Where each result goes on the plot: the rounds (M0/M1, M2, ...) as one line in order, every other
    arm (the equal-compute control) as its own marker beside the last round, whose compute it matches;
    each with its 95% interval (percent), and the paired verdict as the caption."""
    from orca_math.run.report import arms, is_round, outcome, paired_test, points, wilson_interval

    def point(r: dict, x: float) -> dict:
        lo, hi = wilson_interval(r["accuracy"], r["n"])
        return {"label": r["model"], "x": x, "y": 100 * r["accuracy"], "lo": 100 * lo, "hi": 100 * hi}

    rounds, others = [r for r in results if is_round(r)], [r for r in results if not is_round(r)]
    line = [point(r, i) for i, r in enumerate(rounds)]
    beside = [point(r, len(rounds) - 1 + ARM_OFFSET * (i + 1)) for i, r in enumerate(others)]
    first, last, control = arms(results)
    caption = ""
    if last is not None and control is not None:
        test = paired_test(last, control)
        caption = (f"{last['model']} vs control: {points(last, control):+.1f} points"
                   + (f", McNemar p = {test[3]:.2g}: practice {outcome(test[3])} plain SFT" if test else ""))
    elif last is not None:
        caption = f"{last['model']} vs {first['model']}: {points(last, first):+.1f} points"
    return {"line": line, "beside": beside, "caption": caption}


def plot_results(results: list[dict], path: Path, title: str) -> Path:
    """pass@1 with 95% intervals as a PNG: the rounds as a line, the control beside the last round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layout = plot_layout(results)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(results)), 3.8))
    for group, style in ((layout["line"], {"marker": "o", "color": "C0", "label": "practice rounds"}),
                         (layout["beside"], {"marker": "s", "color": "C1", "linestyle": "none",
                                             "label": "equal-compute SFT control"})):
        if not group:
            continue
        xs, ys = [p["x"] for p in group], [p["y"] for p in group]
        err = [[p["y"] - p["lo"] for p in group], [p["hi"] - p["y"] for p in group]]
        ax.errorbar(xs, ys, yerr=err, capsize=4, **style)
        for p in group:
            ax.annotate(f"{p['y']:.1f}", (p["x"], p["hi"]), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=8)
    placed = layout["line"] + layout["beside"]
    ax.set_xticks([p["x"] for p in placed], [p["label"].replace(" (control)", "\n(control)") for p in placed],
                  fontsize=8)
    ax.set_ylabel("pass@1 (%), 95% interval")
    # Zoomed to the intervals (with room for the labels): differences of a few points must show.
    ax.set_ylim(max(0.0, min((p["lo"] for p in placed), default=0) - 5),
                min(100.0, max((p["hi"] for p in placed), default=100) + 6))
    ax.set_title(title + (f"\n{layout['caption']}" if layout["caption"] else ""), fontsize=9)
    ax.grid(alpha=0.3)
    if layout["beside"]:
        ax.legend(fontsize=8, loc="upper left")
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
