"""Plots for the HTML report, rendered with matplotlib (Agg) to PNG bytes.

Each function returns PNG bytes, or None when the data has nothing to plot.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from usdenoise.reporting.figures import pyplot
from usdenoise.reporting.html_page import number


def figure_png(fig, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return buffer.getvalue()


def _short(text: Any, limit: int = 28) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def metric_vs_level(records: Sequence[dict[str, Any]], metrics: Sequence[str], *,
                    baseline: str = "noisy") -> bytes | None:
    """One panel per (noise model, metric): the metric against the noise level, one line per
    method (the baseline dashed)."""
    noises = list(dict.fromkeys(r.get("noise") for r in records if r.get("noise")))
    shown = [m for m in metrics if any(number(r.get(m)) is not None for r in records)]
    if not noises or not shown:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(noises), len(shown), squeeze=False,
                             figsize=(5.2 * len(shown), 3.4 * len(noises)))
    for row, noise in enumerate(noises):
        part = [r for r in records if r.get("noise") == noise]
        levels = list(dict.fromkeys(r.get("level") for r in part))
        numeric = all(number(v) is not None for v in levels)
        position = {v: (number(v) if numeric else k) for k, v in enumerate(levels)}
        for col, metric in enumerate(shown):
            ax = axes[row][col]
            for method in dict.fromkeys(r.get("method") for r in part):
                points = sorted((position[r.get("level")], number(r.get(metric)))
                                for r in part if r.get("method") == method
                                and number(r.get(metric)) is not None)
                if not points:
                    continue
                style = dict(linestyle="--", color="0.45") if method == baseline else {}
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                        markersize=4, label=_short(method), **style)
            if not numeric:
                ax.set_xticks(range(len(levels)))
                ax.set_xticklabels([_short(v, 14) for v in levels], fontsize=8)
            ax.set_xlabel(f"{_short(noise)} level")
            ax.set_ylabel(metric.replace("_", " ").upper() if metric == "psnr"
                          else metric.replace("_", "-").upper())
            ax.set_title(f"{metric.replace('_', ' ')} vs {_short(noise)} level (higher is "
                         "better)", fontsize=9)
            ax.grid(alpha=0.3)
            if col == len(shown) - 1:
                ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return figure_png(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both time (lower) and quality (higher), by time."""
    front: list[tuple[float, float]] = []
    for t, q in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or q > front[-1][1]:
            front.append((t, q))
    return front


def quality_vs_time(records: Sequence[dict[str, Any]], metric: str, *,
                    baseline: str = "noisy") -> bytes | None:
    """One panel per (noise, level): `metric` against seconds per image on a log axis, the
    Pareto front drawn as a step line, the baseline as a dashed horizontal line."""
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r.get("noise"), r.get("level")), []).append(r)
    panels = []
    for (noise, level), rows in groups.items():
        raw = [(r.get("method"), number(r.get("seconds_per_image")), number(r.get(metric)))
               for r in rows if r.get("method") != baseline]
        pts = [(m, t, q) for m, t, q in raw
               if t is not None and q is not None and t > 0 and math.isfinite(q)]
        if pts:
            base = next((number(r.get(metric)) for r in rows if r.get("method") == baseline), None)
            panels.append((noise, level, pts, base))
    if not panels:
        return None
    plt = pyplot()
    cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(n_rows, cols, squeeze=False, figsize=(5.0 * cols, 3.8 * n_rows))
    for k, (noise, level, pts, base) in enumerate(panels):
        ax = axes[k // cols][k % cols]
        front = pareto_front([(t, q) for _, t, q in pts])
        on_front = set(front)
        for method, t, q in pts:
            best = (t, q) in on_front
            ax.scatter([t], [q], s=46 if best else 30, zorder=3,
                       color="tab:green" if best else "tab:blue",
                       edgecolor="black" if best else "none")
            ax.annotate(_short(method, 18), (t, q), textcoords="offset points", xytext=(5, 4),
                        fontsize=7)
        if len(front) > 1:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post",
                    color="tab:green", alpha=0.6, label="Pareto front")
        if base is not None and math.isfinite(base):
            ax.axhline(base, linestyle="--", color="0.45", label=f"{baseline} (input)")
        ax.set_xscale("log")
        times = [t for _, t, _ in pts]
        ax.set_xlim(min(times) / 2.5, max(times) * 2.5)
        ax.set_xlabel("seconds per image (log scale, lower is better)")
        ax.set_ylabel(f"{metric.replace('_', ' ')} (higher is better)")
        title = f"{_short(noise)} {_short(level, 12)}" if noise else "images as they are"
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
    for k in range(len(panels), n_rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    return figure_png(fig)


def curves(x: Sequence[float], series: Mapping[str, Sequence[float | None]], *, xlabel: str,
           ylabel: str, title: str, log_y: bool = False,
           integer_x: bool = False) -> bytes | None:
    """Lines of y against x (loss curves, validation metrics); gaps for missing values."""
    if not x or not any(any(v is not None for v in ys) for ys in series.values()):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    for label, ys in series.items():
        pairs = [(a, b) for a, b in zip(x, ys, strict=False) if b is not None]
        if pairs:
            ax.plot([p[0] for p in pairs], [p[1] for p in pairs], marker="o", markersize=3,
                    label=_short(label))
    if log_y and all(v is None or v > 0 for ys in series.values() for v in ys):
        ax.set_yscale("log")
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def box_plots(groups: dict[str, dict[str, list[float]]], *, ylabel: str,
              title: str) -> bytes | None:
    """One panel per group (e.g. protocol / input), one box per arm, the points on top."""
    groups = {g: {k: v for k, v in arms.items() if v} for g, arms in groups.items()}
    groups = {g: arms for g, arms in groups.items() if arms}
    if not groups:
        return None
    plt = pyplot()
    n = len(groups)
    cols = min(2, n)
    n_rows = math.ceil(n / cols)
    width = max(5.0, 0.9 * max(len(a) for a in groups.values()) + 2)
    fig, axes = plt.subplots(n_rows, cols, squeeze=False, figsize=(width * cols, 3.6 * n_rows))
    for k, (name, arms) in enumerate(groups.items()):
        ax = axes[k // cols][k % cols]
        labels = list(arms)
        ax.boxplot([arms[a] for a in labels], widths=0.55, showfliers=False)
        for j, a in enumerate(labels, start=1):
            values = arms[a]
            jitter = [j + 0.12 * ((i % 5) - 2) / 2 for i in range(len(values))]
            ax.scatter(jitter, values, s=9, alpha=0.6, color="tab:blue", zorder=3)
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels([_short(a, 22) for a in labels], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(_short(name, 60), fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    for k in range(n, n_rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig)


def strength_curves(points: Sequence[dict[str, Any]]) -> bytes | None:
    """Validation Dice and PSNR against the strength α, one panel row per input."""
    inputs = list(dict.fromkeys(p.get("input") for p in points))
    metrics = [m for m in ("val_dice", "val_psnr", "val_hc_abs_error_mm")
               if any(number(p.get(m)) is not None for p in points)]
    if not inputs or not metrics:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(inputs), len(metrics), squeeze=False,
                             figsize=(4.6 * len(metrics), 3.3 * len(inputs)))
    for row, noise in enumerate(inputs):
        part = [p for p in points if p.get("input") == noise]
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            for arm in dict.fromkeys(p.get("arm") for p in part):
                pairs = sorted((number(p.get("alpha")), number(p.get(metric))) for p in part
                               if p.get("arm") == arm and number(p.get(metric)) is not None
                               and number(p.get("alpha")) is not None)
                if pairs:
                    ax.plot([a for a, _ in pairs], [v for _, v in pairs], marker="o",
                            markersize=4, label=_short(arm))
            ax.set_xlabel("strength α (0 = input, 1 = fully denoised)")
            ax.set_ylabel(metric.replace("val_", "validation ").replace("_", " "))
            ax.set_title(f"input {_short(noise)}", fontsize=9)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return figure_png(fig)
