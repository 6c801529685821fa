"""The image grid of the HTML report: the same zoomed crop under every method, with PSNR, and
a difference map, built from the tiles `evaluate` writes to examples/<level>/<id>_<method>.png.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from usdenoise.core.errors import UsdenoiseError
from usdenoise.io import read_image
from usdenoise.reporting.figures import safe_name
from usdenoise.reporting.html_page import esc, img, number

BASELINE = "noisy"
CLEAN = "clean"


def array_png(array: np.ndarray, *, cmap: str | None = None, vmax: float = 1.0) -> bytes:
    """PNG bytes of a [H, W] array in [0, vmax] (gray) or through a matplotlib colormap, or of
    an [H, W, 3] uint8 RGB array."""
    if array.ndim == 3:
        image = Image.fromarray(np.ascontiguousarray(array.astype(np.uint8)))
    elif cmap is None:
        image = Image.fromarray((np.clip(array / vmax, 0, 1) * 255 + 0.5).astype(np.uint8))
    else:
        from matplotlib import colormaps

        rgba = colormaps[cmap](np.clip(array / max(vmax, 1e-12), 0, 1))
        image = Image.fromarray((rgba[..., :3] * 255 + 0.5).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def read_gray(path: Path) -> np.ndarray | None:
    """A tile as a float [H, W] array in [0, 1], or None when it cannot be read."""
    try:
        tensor = read_image(path)
    except (UsdenoiseError, OSError, ValueError):
        return None
    array = tensor.float().numpy()
    return array.mean(axis=0) if array.ndim == 3 else array


def choose_crop(image: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the `size` x `size` window with the most edge energy (the region
    where denoisers differ most), searched on a grid of quarter-window steps."""
    h, w = image.shape
    if size >= h and size >= w:
        return 0, 0
    gy, gx = np.gradient(image.astype(np.float64))
    energy = np.hypot(gx, gy)
    total = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 4)
    best, corner = -1.0, (0, 0)
    for y in range(0, max(1, h - size + 1), step):
        for x in range(0, max(1, w - size + 1), step):
            s = (total[y + size, x + size] - total[y, x + size] - total[y + size, x]
                 + total[y, x])
            if s > best:
                best, corner = s, (y, x)
    return corner


def with_box(image: np.ndarray, corner: tuple[int, int], size: int) -> np.ndarray:
    """The whole image as RGB with the crop outlined."""
    gray = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    picture = Image.fromarray(gray).convert("RGB")
    y, x = corner
    width = max(1, round(max(image.shape) / 128))
    ImageDraw.Draw(picture).rectangle(
        [x, y, x + size - 1, y + size - 1], outline=(255, 60, 40), width=width)
    return np.asarray(picture)


def level_folder(examples: Path, noise: Any, level: Any) -> Path | None:
    """examples/<noise>_<level> as evaluate names it (`rayleigh:0.25` -> `rayleigh_0.25`),
    matching the level by value (`gamma_4` is level 4.0); examples/none without noise."""
    if not examples.is_dir():
        return None
    if not noise:
        folder = examples / "none"
        return folder if folder.is_dir() else None
    named = examples / re.sub(r"[^A-Za-z0-9._-]+", "-", f"{noise}_{level}").strip("-")
    if named.is_dir():
        return named
    for folder in sorted(p for p in examples.iterdir() if p.is_dir()):
        name, _, rest = folder.name.partition("_")
        if name == noise and number(rest) is not None and number(rest) == number(level):
            return folder
    return None


def tile_ids(folder: Path, per_image: list[dict[str, Any]], noise: Any, level: Any) -> list[str]:
    """The image ids with tiles in `folder`: from the baseline's tiles, else per_image.csv."""
    suffix = f"_{safe_name(BASELINE, empty='method')}.png"
    ids = sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))
    if ids:
        return ids
    seen = [str(r.get("id")) for r in per_image if _same_level(r, noise, level)]
    return [i for i in dict.fromkeys(seen) if any(folder.glob(f"{glob_escape(i)}_*.png"))]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _same_level(row: dict[str, Any], noise: Any, level: Any) -> bool:
    if (row.get("noise") or None) not in (noise, "none" if noise is None else noise):
        return False
    if noise is None:
        return True
    a, b = number(row.get("level")), number(level)
    return a == b if a is not None and b is not None else str(row.get("level")) == str(level)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def example_grid(examples: Path, records: list[dict[str, Any]], per_image: list[dict[str, Any]],
                 *, max_images: int = 2) -> tuple[str, list[str]]:
    """HTML of the grids (one per noise level and shown image) and notes on what is missing."""
    notes: list[str] = []
    groups: dict[tuple[Any, Any], list[str]] = {}
    for r in records:
        groups.setdefault((r.get("noise"), r.get("level")), [])
        if r.get("method") not in groups[r.get("noise"), r.get("level")]:
            groups[r.get("noise"), r.get("level")].append(str(r.get("method")))
    parts: list[str] = []
    for (noise, level), methods in groups.items():
        title = f"{noise} {level}" if noise else "images as they are (no reference)"
        folder = level_folder(examples, noise, level)
        if folder is None:
            notes.append(f"{title}: no example tiles in examples/ (run with --examples 1 or more)")
            continue
        ids = tile_ids(folder, per_image, noise, level)
        if not ids:
            notes.append(f"{title}: no example tiles in {folder.name}/")
            continue
        for image_id in ids[:max_images]:
            html, missing = _one_grid(folder, image_id, methods, per_image, noise, level, title)
            parts.append(html)
            if missing:
                notes.append(f"{title}, {image_id}: no tile for " + ", ".join(missing))
    return "".join(parts), notes


def _one_grid(folder: Path, image_id: str, methods: list[str], per_image: list[dict[str, Any]],
              noise: Any, level: Any, title: str) -> tuple[str, list[str]]:
    def tile(label: str) -> np.ndarray | None:
        path = folder / f"{image_id}_{safe_name(label, empty='method')}.png"
        return read_gray(path) if path.is_file() else None

    clean = tile(CLEAN)
    images: dict[str, np.ndarray] = {}
    missing = []
    for method in methods:
        array = tile(method)
        if array is None:
            missing.append(method)
        else:
            images[method] = array
    if not images:
        return "", missing
    reference = clean if clean is not None else images.get(BASELINE)
    first = next(iter(images.values()))
    h, w = first.shape
    size = min(h, w) if min(h, w) <= 48 else max(32, min(h, w) // 2)
    base = reference if reference is not None else first
    corner = choose_crop(base, size)
    y, x = corner

    def crop(array: np.ndarray) -> np.ndarray:
        return array[y: y + size, x: x + size]

    scores = {str(r.get("method")): number(r.get("psnr")) for r in per_image
              if str(r.get("id")) == image_id and _same_level(r, noise, level)}
    against = clean if clean is not None else images.get(BASELINE)
    diffs = {m: np.abs(crop(a) - crop(against)) for m, a in images.items()
             if against is not None and a.shape == against.shape}
    scale_from = diffs.get(BASELINE)
    if scale_from is None and diffs:
        scale_from = np.concatenate([d.ravel() for d in diffs.values()])
    vmax = float(np.percentile(scale_from, 99)) if scale_from is not None else 1.0
    vmax = max(vmax, 1e-3)

    columns = ([CLEAN] if clean is not None else []) + list(images)
    top, bottom = [], []
    for label in columns:
        array = clean if label == CLEAN else images[label]
        assert array is not None  # CLEAN is a column only when clean is given
        value = scores.get(label)
        if value is None and clean is not None and label != CLEAN and array.shape == clean.shape:
            value = psnr(array, clean)
        caption = "reference" if label == CLEAN else (
            f"PSNR {value:.2f} dB" if value is not None and math.isfinite(value) else
            ("PSNR ∞" if value is not None else "no PSNR"))
        top.append(f'<figure>{img(array_png(crop(array)), f"{label}: zoomed crop")}'
                   f'<figcaption><span class="label">{esc(label)}</span><br>'
                   f'<span class="value">{esc(caption)}</span></figcaption></figure>')
        if label == CLEAN:
            bottom.append(f'<figure>{img(array_png(with_box(array, corner, size)), "whole image")}'
                          '<figcaption><span class="value">whole image, crop in red'
                          "</span></figcaption></figure>")
        elif label in diffs:
            what = "|output − clean|" if clean is not None else "|output − input|"
            bottom.append(f'<figure>{img(array_png(diffs[label], cmap="magma", vmax=vmax), what)}'
                          f'<figcaption><span class="value">{esc(what)}</span></figcaption>'
                          "</figure>")
        else:
            bottom.append("<figure></figure>")
    style = f"grid-template-columns:repeat({len(columns)},minmax(0,1fr))"
    what = ("difference to the clean image" if clean is not None
            else "what each method removed from the input")
    head = (f"<h3>{esc(title)} — {esc(image_id)}</h3>"
            f'<p class="note">Zoomed crop ({size}×{size} px at ({x}, {y}) of {w}×{h}), the same '
            f"under every method; PSNR of the whole image. Second row: {esc(what)}, one colour "
            f"scale for all (black 0, yellow ≥ {vmax:.3f}).</p>")
    grid = (f'<div class="grid" style="{style}">' + "".join(top) + "".join(bottom) + "</div>")
    return head + grid, missing
