"""Total-variation denoising, Chambolle's projection algorithm (2004), through
`skimage.restoration.denoise_tv_chambolle`.

Minimises ||u - y||^2 / 2 + weight * TV(u) (scikit-image's scaling: a larger `weight`
removes more noise and more detail); iterations stop when the relative change of the
energy falls below `eps` or after `max_iterations`.
"""

from __future__ import annotations

import numpy as np
import torch

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser


class TotalVariation(Denoiser):
    name = "tv"
    summary = "total-variation denoising, Chambolle (scikit-image)"
    params = (
        Param("weight", 0.1, "denoising weight (larger = smoother)", low=1e-6, high=100.0),
        Param("max_iterations", 200, "most iterations", kind=int, low=1, high=10000),
        Param("eps", 2e-4, "relative energy change that stops the iterations", low=1e-9, high=1.0),
    )
    # set from `params` by Denoiser.__init__
    weight: float
    max_iterations: int
    eps: float
    min_size = 2

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import denoise_tv_chambolle

        images = x.detach().cpu().double().numpy()[:, 0]
        out = np.stack(
            [
                denoise_tv_chambolle(
                    image, weight=self.weight, eps=self.eps, max_num_iter=self.max_iterations
                )
                for image in images
            ]
        )
        return torch.from_numpy(out).to(x.device, torch.float32).unsqueeze(1)
