"""Non-local means (Buades et al. 2005) through `skimage.restoration.denoise_nl_means`.

Each pixel becomes a weighted mean of the pixels in a `2 * patch_distance + 1` search
window, weighted by the similarity of the `patch_size` patches around them. The filtering
strength `h` defaults to `h_factor * sigma`, with sigma the noise standard deviation
estimated per image: `noise="speckle"` (default) takes the level of
`usdenoise.noise.estimate.estimate_speckle` (the std of the speckle in the homogeneous patches
of the displayed image, correlated grain included; falls back to the wavelet estimate with a
warning when there are no such patches), `noise="wavelet"` the old MAD of the finest wavelet
band (`estimate_sigma`, which sees only the finest scale and underrates correlated speckle).
sigma is also passed to scikit-image, which then subtracts the expected noise distance
2 sigma^2 (fast mode), as its documentation recommends. An estimated sigma below 1e-3 warns
and returns the input. Intensities in [0, 1], additive-noise model.
"""

from __future__ import annotations

import numpy as np
import torch

from usdenoise.core.params import Param
from usdenoise.denoise.base import Denoiser
from usdenoise.denoise.classic.bm3d import (
    MIN_LEVEL,
    estimate_noise_sigma,
    speckle_estimate,
    warn_no_noise,
)


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
        Param(
            "noise",
            "speckle",
            "how sigma is estimated when not given: speckle (level in the homogeneous "
            "patches, usdenoise.noise.estimate) or wavelet (finest-band MAD, the old default)",
            kind=str,
            choices=("speckle", "wavelet"),
        ),
    )
    # set from `params` by Denoiser.__init__
    patch_size: int
    patch_distance: int
    h: float | None
    h_factor: float
    sigma: float | None
    noise: str

    def check_config(self) -> None:
        self.min_size = self.patch_size

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        images = x.detach().cpu().double().numpy()[:, 0]
        out = np.stack([self._one(image) for image in images])
        return torch.from_numpy(out).to(x.device, torch.float32).unsqueeze(1)

    def _one(self, image: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        sigma = self._sigma(image) if self.sigma is None else self.sigma
        if sigma is None:
            return image
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

    def _sigma(self, image: np.ndarray) -> float | None:
        """Estimated sigma, or None (after a warning) when it is too small to filter."""
        what, sigma = "wavelet-estimate", None
        if self.noise == "speckle":
            estimate = speckle_estimate(self.name, image)
            if estimate is not None:
                what, sigma = "speckle-estimate", float(estimate.level or 0.0)
        if sigma is None:
            sigma = estimate_noise_sigma(image)
        if sigma < MIN_LEVEL and self.h is None:
            warn_no_noise(self.name, what, sigma)
            return None
        return sigma
