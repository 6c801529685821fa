"""Lee filter (Lee 1980; multiplicative form of Lopes, Touzi & Nezry 1990).

    out = m + W (x - m),   W = clip(1 - Cu^2 / Ci^2, 0, 1)

m and Ci = std / m are the local mean and coefficient of variation over a `window` box,
Cu the noise coefficient of variation (given or estimated from the most homogeneous
windows). Homogeneous areas (Ci ~ Cu) are replaced by their mean; edges (Ci >> Cu) are kept.
Reflect padding.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic._local import check_odd_window, local_cv2, local_stats, noise_cv2

WINDOW = Param("window", 7, "side of the square window (odd)", kind=int, low=3, high=51)
NOISE_CV = Param(
    "noise_cv",
    None,
    "noise coefficient of variation std/mean; None estimates it from the most "
    "homogeneous windows",
    kind=float,
    low=0.0,
    high=5.0,
    allow_none=True,
)


class LocalStatsFilter(Denoiser):
    """Base for the window filters: odd window, image at least one window wide."""

    params: ClassVar[tuple[Param, ...]] = (WINDOW, NOISE_CV)
    # set from `params` by Denoiser.__init__
    window: int
    noise_cv: float | None

    def check_config(self) -> None:
        check_odd_window(self.name, self.window)
        self.min_size = self.window

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Local mean, local Ci^2 and noise Cu^2 (broadcastable [B, 1, 1, 1])."""
        mean, var = local_stats(x, self.window)
        cu2 = noise_cv2(x, self.noise_cv, mean, var)
        return mean, local_cv2(mean, var), cu2


class Lee(LocalStatsFilter):
    name = "lee"
    summary = "Lee local-statistics filter (MMSE, multiplicative noise)"

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        mean, ci2, cu2 = self._stats(x)
        w = (1.0 - cu2 / ci2.clamp_min(1e-12)).clamp(0.0, 1.0)
        return mean + w * (x - mean)
