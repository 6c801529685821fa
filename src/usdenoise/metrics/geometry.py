"""Head geometry of class maps: the largest region, its fitted ellipse, the head circumference.

The head circumference is an ellipse (`cv2.fitEllipse`) fitted, in mm coordinates, to the
pixel-edge border of the largest connected head region, and Ramanujan's perimeter of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError


def ellipse_perimeter(a: float, b: float) -> float:
    """Ramanujan's approximation of the perimeter of an ellipse with semi-axes a, b."""
    a, b = abs(float(a)), abs(float(b))
    return math.pi * (3.0 * (a + b) - math.sqrt((3.0 * a + b) * (a + 3.0 * b)))


def as_class_map(mask: Any) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise UsdenoiseError(f"expected a class map [H, W], got shape {tuple(mask.shape)}")
    return mask


def head_classes(class_names: Sequence[str]) -> list[int]:
    """Classes that make up the head: those named '*head*', else every non-background class."""
    named = [i for i, n in enumerate(class_names) if "head" in str(n).lower()]
    return named or list(range(1, len(class_names)))


def largest_region(binary: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected region of a binary map with its holes filled (uint8 0/1)."""
    binary = np.ascontiguousarray(binary.astype(np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return None
    label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == label).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled | region


def edge_points(region: np.ndarray) -> np.ndarray:
    """(x, y) midpoints of the pixel edges between the region and its 4-neighbours outside.

    They lie on the region's border (half a pixel outside the border pixels' centres), so an
    ellipse fitted to them is not shrunk by half a pixel as one fitted to pixel centres is.
    """
    inside = np.pad(region.astype(bool), 1)
    points = []
    core = inside[1:-1, 1:-1]
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        neighbour = inside[1 + dy: inside.shape[0] - 1 + dy, 1 + dx: inside.shape[1] - 1 + dx]
        ys, xs = np.nonzero(core & ~neighbour)
        points.append(np.stack([xs + dx / 2, ys + dy / 2], axis=1))
    return np.concatenate(points).astype(np.float64)


Ellipse = tuple[float, float, float, float, float]


def fit_head_ellipse(mask: Any, spacing_mm: float | Sequence[float], *,
                     classes: Sequence[int] = (1,)) -> Ellipse | None:
    """Ellipse (cx_mm, cy_mm, a_mm, b_mm, angle_deg) of the largest head region, or None
    when the mask has no head (or too little of one to fit an ellipse).

    The border points are scaled to mm *before* fitting, so a mask resized to a non-square
    pixel grid (anisotropic `spacing_mm` = (row_mm, col_mm)) measures correctly.
    """
    m = as_class_map(mask)
    region = largest_region(np.isin(m, list(classes)))
    if region is None:
        return None
    if isinstance(spacing_mm, (int, float)):
        dy = dx = float(spacing_mm)
    else:
        dy, dx = (float(v) for v in spacing_mm)
    if not (dy > 0 and dx > 0):
        raise UsdenoiseError(f"pixel size {spacing_mm!r}: must be positive")
    points = edge_points(region) * np.array([dx, dy])
    if len(points) < 5:
        return None
    (cx, cy), (width, height), angle = cv2.fitEllipse(points.astype(np.float32))
    if not all(math.isfinite(v) for v in (cx, cy, width, height)) or min(width, height) <= 0:
        return None
    return float(cx), float(cy), float(width) / 2, float(height) / 2, float(angle)


def head_circumference(mask: Any, spacing_mm: float | Sequence[float], *,
                       classes: Sequence[int] = (1,)) -> float | None:
    """Head circumference in mm of a class map (None: no head found)."""
    ellipse = fit_head_ellipse(mask, spacing_mm, classes=classes)
    return None if ellipse is None else ellipse_perimeter(ellipse[2], ellipse[3])
