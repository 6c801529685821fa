"""Enhanced Lee filter (Lopes, Touzi & Nezry 1990).

Three classes by the local coefficient of variation Ci (window box, reflect padding):

- Ci <= Cu (homogeneous): the local mean m;
- Cu < Ci < Cmax: m + (x - m) (1 - W) with W = exp(-damping (Ci - Cu) / (Cmax - Ci));
- Ci >= Cmax (point target / strong edge): the pixel itself.

Cu is the noise cv (given or estimated), Cmax = sqrt(1 + 2 / L) with L = 1 / Cu^2 the
equivalent number of looks, i.e. Cmax = sqrt(1 + 2 Cu^2). Damping 1 is the usual default.
"""

from __future__ import annotations

import torch

from usdenoise.core.params import Param
from usdenoise.denoise.classic.lee import NOISE_CV, WINDOW, LocalStatsFilter


class EnhancedLee(LocalStatsFilter):
    name = "enhanced_lee"
    summary = "enhanced Lee filter (homogeneous / heterogeneous / point-target classes)"
    params = (
        WINDOW,
        Param("damping", 1.0, "damping factor K of the exponential weight", low=0.0, high=100.0),
        NOISE_CV,
    )
    # set from `params` by Denoiser.__init__
    window: int
    damping: float
    noise_cv: float | None

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        mean, ci2, cu2 = self._stats(x)
        ci, cu = ci2.sqrt(), cu2.sqrt()
        cmax = (1.0 + 2.0 * cu2).sqrt()
        w = torch.exp(-self.damping * (ci - cu) / (cmax - ci).clamp_min(1e-12))
        out = mean + (x - mean) * (1.0 - w)
        out = torch.where(ci <= cu, mean, out)
        return torch.where(ci >= cmax, x, out)
