"""Gaussian smoothing baseline (separable kernel, reflect padding).

Kernel radius int(truncate * sigma + 0.5), as in scipy.ndimage / skimage.filters.gaussian.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic._local import reflect_pad


def gaussian_kernel(sigma: float, truncate: float) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).float()


class Gaussian(Denoiser):
    name = "gaussian"
    summary = "Gaussian smoothing, a baseline"
    params = (
        Param("sigma", 1.0, "standard deviation of the kernel in pixels", low=0.1, high=50.0),
        Param("truncate", 4.0, "kernel radius in standard deviations", low=1.0, high=10.0),
    )
    # set from `params` by Denoiser.__init__
    sigma: float
    truncate: float

    def check_config(self) -> None:
        self.radius = int(self.truncate * self.sigma + 0.5)
        self.min_size = 2 * self.radius + 1

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        k = gaussian_kernel(self.sigma, self.truncate).to(x.device)
        p = reflect_pad(x, self.radius)
        p = F.conv2d(p, k.view(1, 1, 1, -1))
        return F.conv2d(p, k.view(1, 1, -1, 1))
