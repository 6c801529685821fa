"""Frost filter (Frost, Stiles, Shanmugan & Holtzman 1982; ENVI / PCI form).

Each output pixel is a normalised weighted mean over a `window` box with an exponential
kernel whose steepness follows the local heterogeneity:

    out = sum_t m_t x_t / sum_t m_t,   m_t = exp(-damping * Ci^2 * |t|)

|t| is the Euclidean distance from the centre, Ci = std / mean over the window. Flat areas
(small Ci) get a nearly flat kernel (strong smoothing); edges (large Ci) a peaked one.

Fast formulation ("ring decomposition"): the distances in a window take only a few values
(6 for 5 x 5, 10 for 7 x 7). The image sums over each ring of equal distance are computed
once (shifted slices of the reflect-padded batch), so each pixel needs one exponential per
ring instead of one per window pixel, and no [B, w*w, H, W] unfold tensor is built:

    out = sum_r exp(-A d_r) S_r / sum_r n_r exp(-A d_r),   A = damping * Ci^2
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from usdenoise.core.params import Param
from usdenoise.denoise.classic._local import local_cv2, local_stats, reflect_pad
from usdenoise.denoise.classic.lee import WINDOW, LocalStatsFilter


def distance_rings(window: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """Offsets (dy, dx) of a window grouped by their squared distance from the centre."""
    r = window // 2
    rings: dict[int, list[tuple[int, int]]] = {}
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            rings.setdefault(dy * dy + dx * dx, []).append((dy, dx))
    return sorted(rings.items())


class Frost(LocalStatsFilter):
    name = "frost"
    summary = "Frost adaptive exponential-kernel filter"
    params = (
        replace(WINDOW, default=5),
        Param("damping", 1.0, "damping factor K of the exponential kernel", low=0.0, high=100.0),
    )
    # set from `params` by Denoiser.__init__
    window: int
    damping: float

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = local_stats(x, self.window)
        a = self.damping * local_cv2(mean, var)
        r = self.window // 2
        p = reflect_pad(x, r)
        h, w = x.shape[-2:]
        num = torch.zeros_like(x)
        den = torch.zeros_like(x)
        weights: dict[int, torch.Tensor] = {}  # squared distance -> exp(-A d)
        for d2, offsets in distance_rings(self.window):
            ring = torch.zeros_like(x)
            for dy, dx in offsets:
                ring += p[..., r + dy : r + dy + h, r + dx : r + dx + w]
            if d2 == 0:
                num += ring
                den += 1.0
                continue
            weight = _power_of_known(weights, d2)
            if weight is None:
                weight = torch.exp(-math.sqrt(d2) * a)
            weights[d2] = weight
            num.addcmul_(weight, ring)
            den.add_(weight, alpha=len(offsets))
        return num / den


def _power_of_known(weights: dict[int, torch.Tensor], d2: int) -> torch.Tensor | None:
    """exp(-A k d) = exp(-A d)^k: reuse a ring whose distance divides this one (2 = 2 x 1,
    sqrt(8) = 2 x sqrt(2), ...), which saves exponentials (3 instead of 5 for a 5 x 5 window)."""
    for base, weight in weights.items():
        k = math.isqrt(d2 // base)
        if k > 1 and k * k * base == d2:
            return weight**k
    return None
