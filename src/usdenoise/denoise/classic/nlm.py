"""Non-local means (Buades et al. 2005) through `skimage.restoration.denoise_nl_means`.

Each pixel becomes a weighted mean of the pixels in a `2 * patch_distance + 1` search
window, weighted by the similarity of the `patch_size` patches around them. The filtering
strength `h` defaults to `h_factor * sigma`, with sigma the noise standard deviation
estimated per image (MAD of the finest wavelet band, `estimate_sigma`); sigma is also passed
to scikit-image, which then subtracts the expected noise distance 2 sigma^2 (fast mode), as
its documentation recommends. Intensities in [0, 1], additive-noise model.
"""

from __future__ import annotations

import numpy as np
import torch

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic.bm3d import estimate_noise_sigma


class NonLocalMeans(Denoiser):
    name = "nlm"
    summary = "non-local means (scikit-image, h from the estimated noise sigma)"
    params = (
        Param("patch_size", 5, "side of the compared patches (pixels)", kind=int, low=1, high=21),
        Param(
            "patch_distance",
            6,
            "search radius: patches within this many pixels are compared",
            kind=int,
            low=1,
            high=50,
        ),
        Param(
            "h",
            None,
            "filtering strength on the [0, 1] scale; None uses h_factor * estimated sigma",
            kind=float,
            low=0.0,
            high=10.0,
            allow_none=True,
        ),
        Param("h_factor", 0.8, "h = h_factor * sigma when h is None", low=0.0, high=10.0),
        Param(
            "sigma",
            None,
            "noise standard deviation on the [0, 1] scale; None estimates it per image",
            kind=float,
            low=0.0,
            high=1.0,
            allow_none=True,
        ),
    )

    def check_config(self) -> None:
        self.min_size = self.patch_size

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        images = x.detach().cpu().double().numpy()[:, 0]
        out = np.stack([self._one(image) for image in images])
        return torch.from_numpy(out).to(x.device, torch.float32).unsqueeze(1)

    def _one(self, image: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        sigma = estimate_noise_sigma(image) if self.sigma is None else self.sigma
        h = self.h_factor * sigma if self.h is None else self.h
        if h <= 0.0:
            return image
        return denoise_nl_means(
            image,
            patch_size=self.patch_size,
            patch_distance=self.patch_distance,
            h=h,
            sigma=sigma,
            fast_mode=True,
        )
