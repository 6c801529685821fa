"""Clean-up of predicted class maps before they are measured: `none`, `largest`, `ellipse`.

- `largest`: every foreground class keeps only its largest 8-connected region, holes filled
  (specks of "head" in the maternal tissue are what pull HD95 and the area up).
- `ellipse`: as `largest`, then each head class is replaced by the filled ellipse fitted to
  that region's border (`segment.fit_head_ellipse`, the fit the HC measure uses):
  a fetal skull is close to an ellipse, and HC18's reference masks are ellipses.

Classes are painted in class order, so a later class wins where two overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.metrics.geometry import fit_head_ellipse, largest_region

POSTPROCESS = ("none", "largest", "ellipse")


SUBPIXEL = 4  # cv2 drawing with 1/16-pixel coordinates


def fill_ellipse(shape: tuple[int, ...], centre: tuple[float, float],
                 semi_axes: tuple[float, float], angle: float) -> np.ndarray:
    """A filled ellipse (uint8 0/1) through the given border, in pixel-centre coordinates.

    cv2 also paints the pixels its outline touches, half a pixel outside the border; the
    semi-axes are therefore drawn 0.5 px shorter (a drawn ellipse refitted and refilled this
    way keeps its area within 1%).
    """
    scale = 1 << SUBPIXEL
    image = np.zeros(shape[-2:], np.uint8)
    axes = tuple(int(round(max(a - 0.5, 0.5) * scale)) for a in semi_axes)
    cv2.ellipse(image, (int(round(centre[0] * scale)), int(round(centre[1] * scale))), axes,
                float(angle), 0, 360, 1, thickness=-1, lineType=cv2.LINE_8, shift=SUBPIXEL)
    return image


def postprocess_mask(pred: torch.Tensor | np.ndarray, mode: str, *,
                     head: Sequence[int] = (1,)) -> torch.Tensor:
    """Clean a class map `[H,W]`; returns a new int64 tensor (the input is not changed)."""

    if mode not in POSTPROCESS:
        raise UsdenoiseError(f"--postprocess {mode!r}: choose {', '.join(POSTPROCESS)}")
    p = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    p = p.astype(np.int64)
    if mode == "none":
        return torch.from_numpy(p.copy())
    out = np.zeros_like(p)
    for c in (int(c) for c in np.unique(p) if c > 0):
        region = largest_region(p == c)
        if region is None:
            continue
        if mode == "ellipse" and c in head:
            # the same fit as the HC measure, in pixel units (spacing 1)
            ellipse = fit_head_ellipse(region, 1.0)
            if ellipse is not None:
                cx, cy, a, b, angle = ellipse
                region = fill_ellipse(p.shape, (cx, cy), (a, b), angle)
        out[region.astype(bool)] = c
    return torch.from_numpy(out)
