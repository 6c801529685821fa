"""Figures a person looks at: side-by-side example grids and curves (matplotlib, Agg)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from usdenoise.core.files import atomic_write
from usdenoise.io import write_image


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def safe_name(text: str, *, empty: str = "figure") -> str:
    """A file-name part: runs of characters other than letters, digits, `._-` become "-"
    ("rayleigh:0.5" -> "rayleigh-0.5", "a (b)" -> "a-b"); `empty` if nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or empty


def save_figure(fig, path: Path, *, dpi: int = 110) -> None:
    """Write a matplotlib figure as PNG atomically (temporary name, then rename) and close it."""

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)


def save_example_grid(
    path: Path,
    *,
    clean: list[torch.Tensor] | None,
    outputs: dict[str, list[torch.Tensor]],
    ids: list[str],
    title: str,
) -> None:
    """Rows are images, columns are clean (if known) then each method; also each tile as PNG."""

    columns: dict[str, list[torch.Tensor]] = {}
    if clean is not None:
        columns["clean"] = clean
    columns.update(outputs)
    n_rows, n_cols = len(ids), len(columns)
    if n_rows == 0 or n_cols == 0:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tiles_dir = path.with_suffix("")
    tiles_dir.mkdir(exist_ok=True)
    plt = pyplot()
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows + 0.4), squeeze=False
    )
    for col, (label, images) in enumerate(columns.items()):
        for row, image_id in enumerate(ids):
            image = images[row].reshape(images[row].shape[-2:]).float().clamp(0, 1)
            axes[row][col].imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
            axes[row][col].set_xticks([])
            axes[row][col].set_yticks([])
            if row == 0:
                axes[row][col].set_title(label, fontsize=9)
            if col == 0:
                axes[row][col].set_ylabel(image_id, fontsize=8)
            write_image(tiles_dir / f"{image_id}_{safe_name(label, empty='method')}.png", image)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def save_tradeoff_curves(path: Path, curves: dict[str, list[dict]], *, target: float | None,
                         title: str) -> None:
    """Matched speckle reduction: for each method, its strength curve (points α = 0 … 1) of
    speckle-index change (x, %) against the skull-edge ratio and, where the curve has it,
    against the frozen segmenter's Dice. A dashed line marks the common reduction `target`
    (a fraction: 0.3 is −30 %); the filled marker is each method at full strength."""
    panels = [("edge_ratio", "skull edge ratio (output / input)")]
    if any(p.get("seg_dice") is not None for points in curves.values() for p in points):
        panels.append(("seg_dice", "Dice (frozen segmenter)"))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for method, points in curves.items():
            pairs = [(100 * p["speckle_index_change"], p[key]) for p in points
                     if p.get("speckle_index_change") is not None and p.get(key) is not None]
            if not pairs:
                continue
            xs, ys = zip(*pairs, strict=True)
            (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=method)
            ax.plot(xs[-1], ys[-1], marker="o", markersize=7, color=line.get_color())
        if target is not None:
            ax.axvline(-100 * abs(target), color="0.4", linestyle="--", linewidth=1)
        ax.set_xlabel("speckle index change (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
