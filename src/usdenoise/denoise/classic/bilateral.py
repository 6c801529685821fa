"""Bilateral filter (Tomasi & Manduchi 1998) through `cv2.bilateralFilter`.

Each pixel becomes a mean of its `diameter` neighbourhood weighted by a Gaussian of the
spatial distance (`sigma_space`, pixels) times a Gaussian of the intensity difference
(`sigma_color`, on the [0, 1] scale). OpenCV's border is reflect-101 (mirror about the edge
pixel). Runs on float32 images one by one.
"""

from __future__ import annotations

import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser


class Bilateral(Denoiser):
    name = "bilateral"
    summary = "bilateral filter (OpenCV)"
    params = (
        Param("diameter", 9, "side of the pixel neighbourhood (odd)", kind=int, low=3, high=31),
        Param(
            "sigma_color",
            0.1,
            "intensity-difference Gaussian sigma on the [0, 1] scale",
            low=1e-4,
            high=10.0,
        ),
        Param("sigma_space", 3.0, "spatial Gaussian sigma in pixels", low=0.1, high=100.0),
    )
    # set from `params` by Denoiser.__init__
    diameter: int
    sigma_color: float
    sigma_space: float

    def check_config(self) -> None:
        if self.diameter % 2 == 0:
            raise UsdenoiseError(
                f"{self.name}: parameter diameter must be odd, got {self.diameter}"
            )
        self.min_size = self.diameter // 2 + 1

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        import cv2

        images = x.detach().cpu().float().numpy()[:, 0]
        out = np.stack(
            [
                cv2.bilateralFilter(
                    np.ascontiguousarray(image), self.diameter, self.sigma_color, self.sigma_space
                )
                for image in images
            ]
        )
        return torch.from_numpy(out).to(x.device).unsqueeze(1)
