"""Kuan filter (Kuan, Sawchuk, Strand & Chavel 1985).

    out = m + W (x - m),   W = clip((1 - Cu^2 / Ci^2) / (1 + Cu^2), 0, 1)

Same local statistics as `lee` (window mean m, local cv Ci, noise cv Cu given or
estimated); the exact multiplicative-model MMSE weight adds the 1 / (1 + Cu^2) factor.
Reflect padding.
"""

from __future__ import annotations

import torch

from usdenoise.denoise.classic.lee import LocalStatsFilter


class Kuan(LocalStatsFilter):
    name = "kuan"
    summary = "Kuan local-statistics filter (exact MMSE for multiplicative noise)"

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        mean, ci2, cu2 = self._stats(x)
        w = ((1.0 - cu2 / ci2.clamp_min(1e-12)) / (1.0 + cu2)).clamp(0.0, 1.0)
        return mean + w * (x - mean)
