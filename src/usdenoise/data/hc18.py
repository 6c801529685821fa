"""HC18 grand challenge training set: images, filled head masks, pixel size, reference HC.

Layout (van den Heuvel et al., PLoS ONE 2018; Zenodo 10.5281/zenodo.1327317):

    PATH/training_set/NNN_HC.png, NNN_2HC.png, ...     images
    PATH/training_set/NNN_HC_Annotation.png            1-pixel ellipse outline of the skull
    PATH/training_set_pixel_size_and_HC.csv            pixel size (mm) and HC (mm) per image

PATH may also be the `training_set` folder itself (the CSV is then looked for beside it).
The outline is filled into a mask (0 background, 1 head). Where the ellipse runs off the
image the outline is open and filling gives nothing but the outline; then an ellipse is
fitted to the outline pixels (`cv2.fitEllipse`) and drawn filled. The subject is the
number before the first `_` of the file name.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.datasets import FileDataset, Item, require_folder
from usdenoise.io import read_raw
from usdenoise.metrics.geometry import ellipse_perimeter

CSV_NAME = "training_set_pixel_size_and_HC.csv"
ANNOTATION_SUFFIX = "_Annotation"
# a closed outline encloses far more pixels than it has; an open one encloses none
MIN_FILL_RATIO = 3.0


def fill_outline(outline: np.ndarray, *, name: str = "annotation") -> tuple[np.ndarray, str]:
    """Fill a 1-pixel ellipse outline (nonzero pixels) into a uint8 0/1 mask.

    Returns (mask, method) with method "fill" (closed outline, filled as drawn) or
    "ellipse" (open outline: ellipse fitted to the outline pixels, drawn filled).
    An annotation that cannot be filled raises a UsdenoiseError naming `name`.
    """
    if outline.ndim == 3:
        outline = outline.max(axis=-1)
    binary = (outline > (127 if outline.dtype == np.uint8 else 0)).astype(np.uint8)
    n_outline = int(binary.sum())
    if n_outline < 5:
        raise UsdenoiseError(
            f"{name}: annotation cannot be filled ({n_outline} outline pixels, need at least 5)"
        )
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(binary)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    if int(filled.sum()) >= MIN_FILL_RATIO * n_outline:
        return filled, "fill"
    # open outline: fit an ellipse to the outline pixel centres and draw it filled
    ys, xs = np.nonzero(binary)
    points = np.stack([xs, ys], axis=1).astype(np.float32)
    (cx, cy), (width, height), angle = cv2.fitEllipse(points)
    values = (cx, cy, width, height, angle)
    if not all(math.isfinite(v) for v in values) or min(width, height) < 2.0:
        raise UsdenoiseError(f"{name}: annotation cannot be filled (no ellipse fits the outline)")
    # the fitted ellipse must pass through the outline, not merely near a line of pixels
    residual = _ellipse_residual(points, cx, cy, width / 2, height / 2, angle)
    if residual > 0.05:
        raise UsdenoiseError(
            f"{name}: annotation cannot be filled (outline is open and not an ellipse)"
        )
    filled = np.zeros_like(binary)
    shift = 4  # sub-pixel precision for cv2.ellipse
    scale = 1 << shift
    cv2.ellipse(filled, (round(cx * scale), round(cy * scale)),
                (round(width / 2 * scale), round(height / 2 * scale)), angle, 0, 360, 1,
                thickness=-1, lineType=cv2.LINE_8, shift=shift)
    filled |= binary
    if int(filled.sum()) < MIN_FILL_RATIO * n_outline:
        raise UsdenoiseError(f"{name}: annotation cannot be filled (fitted ellipse is too thin)")
    return filled, "ellipse"


def _ellipse_residual(points: np.ndarray, cx: float, cy: float, a: float, b: float,
                      angle_deg: float) -> float:
    """Median |elliptic radius - 1| of the points on the ellipse (0 = exactly on it)."""
    t = math.radians(angle_deg)
    dx, dy = points[:, 0] - cx, points[:, 1] - cy
    p = dx * math.cos(t) + dy * math.sin(t)
    q = -dx * math.sin(t) + dy * math.cos(t)
    r = np.sqrt((p / a) ** 2 + (q / b) ** 2)
    return float(np.median(np.abs(r - 1.0)))


def head_circumference_mm(mask: np.ndarray | torch.Tensor,
                          spacing_mm: float | Sequence[float]) -> float:
    """HC of a head mask: Ramanujan perimeter of the ellipse fitted to its outer border, mm.

    `spacing_mm` is one isotropic pixel size or (row_mm, col_mm); the border points are
    scaled to mm before fitting, so resized (anisotropic) masks measure correctly.
    """
    m = mask.numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    binary = (m > 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise UsdenoiseError("head_circumference_mm: the mask is empty")
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
    if len(contour) < 5:
        raise UsdenoiseError("head_circumference_mm: the head region is too small")
    if isinstance(spacing_mm, (int, float)):
        dy = dx = float(spacing_mm)
    else:
        dy, dx = (float(v) for v in spacing_mm)
    points = (contour * np.array([dx, dy])).astype(np.float32)
    _, (width, height), _ = cv2.fitEllipse(points)
    return ellipse_perimeter(width / 2, height / 2)


def read_hc18_csv(path: Path) -> dict[str, tuple[float, float]]:
    """{filename: (pixel size mm, head circumference mm)} from the HC18 CSV."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsdenoiseError(f"{path}: cannot read ({exc})") from None
    if not rows or not rows[0] or rows[0][0].strip().lower() != "filename" or len(rows[0]) < 2:
        raise UsdenoiseError(
            f"{path}: expected the header 'filename,pixel size(mm),head circumference (mm)'"
        )
    table: dict[str, tuple[float, float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            pixel = float(row[1])
            hc = float(row[2]) if len(row) > 2 and row[2].strip() else math.nan
        except (IndexError, ValueError):
            raise UsdenoiseError(f"{path}: line {line}: cannot read {row!r}") from None
        if not (math.isfinite(pixel) and pixel > 0):
            raise UsdenoiseError(f"{path}: line {line}: pixel size {row[1]!r} is not positive")
        table[row[0].strip()] = (pixel, hc)
    return table


class HC18Dataset(FileDataset):
    """HC18 fetal head circumference set: hc18:PATH (images, filled skull masks, HC in mm)."""

    name = "hc18"
    summary = "HC18 grand challenge training set: hc18:PATH (filled head masks, pixel size, HC)"
    class_names = ("background", "head")

    def __init__(self, root: str | os.PathLike, *, size: int | Sequence[int] | None = None):
        super().__init__(root, size=size)
        root_dir = require_folder(root, what="hc18")
        if (root_dir / "training_set").is_dir():
            images_dir, csv_path = root_dir / "training_set", root_dir / CSV_NAME
        else:
            images_dir, csv_path = root_dir, root_dir / CSV_NAME
            if not csv_path.is_file():
                csv_path = root_dir.parent / CSV_NAME
        if not csv_path.is_file():
            raise UsdenoiseError(f"hc18: {root_dir}: {CSV_NAME} not found")
        table = read_hc18_csv(csv_path)
        images = sorted(
            p for p in images_dir.glob("*.png")
            if not p.stem.endswith(ANNOTATION_SUFFIX) and not p.name.startswith(".")
        )
        if not images:
            raise UsdenoiseError(f"hc18: {images_dir}: no images (*.png) found")
        for path in images:
            annotation = path.with_name(f"{path.stem}{ANNOTATION_SUFFIX}{path.suffix}")
            if not annotation.is_file():
                raise UsdenoiseError(f"{path}: annotation {annotation.name} not found")
            if path.name not in table:
                raise UsdenoiseError(f"{path}: no row for {path.name} in {csv_path}")
            pixel, hc = table[path.name]
            self.items.append(Item(
                id=path.stem, subject=path.stem.split("_", 1)[0], image=path, mask=annotation,
                spacing_mm=(pixel, pixel), hc_mm=hc if math.isfinite(hc) else None,
            ))

    def load_mask(self, item: Item) -> torch.Tensor | None:
        assert item.mask is not None  # every item listed in __init__ has one
        outline = read_raw(item.mask)
        filled, _ = fill_outline(outline, name=str(item.mask))
        return torch.from_numpy(filled.astype(np.int64))
